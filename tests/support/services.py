"""Finding real services for tests: skip with a reason, or fail when REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip the test with ``reason`` unless services are required, in which case fail."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# A redis-server of the test session's own (started in conftest when the binary exists):
# tests that must empty their broker flush that one, never a Redis someone else shares.
_private_redis: subprocess.Popen[bytes] | None = None
_private_redis_url: str | None = None


def start_private_redis() -> None:
    """Start a throwaway redis-server on a free loopback port, if the binary is installed."""
    global _private_redis, _private_redis_url
    binary = shutil.which("redis-server")
    if binary is None or _private_redis is not None:
        return
    port = free_port()
    _private_redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tempfile.gettempdir(),
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    _private_redis_url = f"redis://127.0.0.1:{port}/0"


def stop_private_redis() -> None:
    global _private_redis, _private_redis_url
    if _private_redis is not None:
        _private_redis.terminate()
        try:
            _private_redis.wait(10)
        except subprocess.TimeoutExpired:
            _private_redis.kill()
    _private_redis = _private_redis_url = None


def redis_url() -> str:
    """The session's private Redis when there is one, else ``TEST_REDIS_URL``."""
    return _private_redis_url or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def flush_private_redis() -> str:
    """Empty the session's private Redis (a broker test starts clean) and return its URL.

    Only ever the private one: a shared Redis is never flushed, so without the redis-server
    binary these tests skip (or fail under REQUIRE_SERVICES=1).
    """
    need(
        _private_redis_url is not None,
        "needs the redis-server binary for a private Redis (a shared one is never flushed)",
    )
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    return redis_url()


def redis_available() -> bool:
    parts = urlsplit(redis_url())
    return port_open(parts.hostname or "127.0.0.1", parts.port or 6379)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
