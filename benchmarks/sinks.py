"""SMTP sink and raw-rate measurement for ``bench_send``.

Prefers Postfix's ``smtp-sink`` / ``smtp-source`` (C, fast): found on PATH, under
``var/bench-tools``, or unpacked there from Debian's postfix package (``apt-get download`` +
``dpkg -x``; no daemon is installed or started). Falls back to a small asyncio sink and a raw
pipelined Python client.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "var" / "bench-tools"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _postfix_tool(name: str) -> tuple[str, dict[str, str]] | None:
    """Path of a Postfix test tool and the environment it needs, unpacking it if we can."""
    found = shutil.which(name)
    if found:
        return found, {}
    unpacked = TOOLS / "postfix" / "usr" / "sbin" / name
    libs = {"LD_LIBRARY_PATH": str(TOOLS / "postfix" / "usr" / "lib" / "postfix")}
    if unpacked.exists():
        return str(unpacked), libs
    if os.environ.get("BENCH_NO_DOWNLOAD") or not shutil.which("apt-get"):
        return None
    TOOLS.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["apt-get", "download", "postfix"],
            cwd=TOOLS,
            check=True,
            capture_output=True,
            timeout=120,
        )
        debs = sorted(TOOLS.glob("postfix_*.deb"))
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(TOOLS / "postfix")], check=True)
    except (subprocess.SubprocessError, OSError, IndexError):
        return None
    return (str(unpacked), libs) if unpacked.exists() else None


@dataclass
class Sink:
    kind: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sink did not start on port {port}")


def start_sink(work_dir: Path) -> Sink:
    port = _free_port()
    tool = None if os.environ.get("BENCH_PYTHON_SINK") else _postfix_tool("smtp-sink")
    if tool is not None:
        path, extra = tool
        argv = [path, "-4"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"127.0.0.1:{port}", "1024"]
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **extra},
            stdout=subprocess.DEVNULL,
            stderr=(work_dir / "sink.log").open("wb"),
        )
        _wait_port(port)
        return Sink("postfix smtp-sink", port, proc)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sinks", "serve", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(work_dir / "sink.log").open("wb"),
    )
    _wait_port(port)
    return Sink("asyncio sink", port, proc)


# -- a small asyncio sink ----------------------------------------------------------------------


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 Bye\r\n")
                break
            else:
                writer.write(b"250 Ok\r\n")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_session, "127.0.0.1", port, limit=1 << 20)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- raw rate ------------------------------------------------------------------------------------


@dataclass
class RawRate:
    rate: float
    method: str


def _raw_client(port: int, size: int, count: int) -> None:
    from distributor.delivery.smtp_client import SMTPClient
    from distributor.mail.transport import SMTPConfig

    body = (b"Subject: raw\r\n\r\n" + b"x" * 76 + b"\r\n") * max(1, size // 96)
    client = SMTPClient(SMTPConfig("127.0.0.1", port))
    client.connect()
    for i in range(count):
        client.write_envelope("bench@example.org", f"r{i}@example.org")
        if client.read_envelope() is None:
            client.send_body(body)
    client.quit()


def raw_smtp_rate(sink: Sink, size: int, count: int, sessions: int = 4) -> RawRate:
    """Messages per second a raw pipelined client pushes into the sink at this size."""
    tool = None if os.environ.get("BENCH_PYTHON_SINK") else _postfix_tool("smtp-source")
    if tool is not None:
        path, extra = tool
        argv = [
            path, "-4", "-d", "-s", str(sessions), "-m", str(count),
            "-l", str(max(1, size - 250)), "-f", "bench@example.org", "-t", "desk@example.org",
            f"127.0.0.1:{sink.port}",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(argv, env={**os.environ, **extra}, check=True, capture_output=True)
        return RawRate(count / (time.perf_counter() - started), f"smtp-source -s {sessions}")
    per = count // sessions
    procs = [
        multiprocessing.Process(target=_raw_client, args=(sink.port, size, per))
        for _ in range(sessions)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return RawRate(per * sessions / (time.perf_counter() - started), "python pipelined client")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
