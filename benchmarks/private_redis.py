"""A redis-server of a benchmark's own: a free loopback port, nothing kept on disk.

Benchmarks never flush a Redis that someone else may share; one that needs an empty broker
starts its own with this and stops it afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time


def start_private_redis(prefix: str = "bench-redis-") -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on a free port; return the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix=prefix)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not listen on port {port}")


def stop_private_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
