"""The private pieces a chaos scenario runs on: its own Redis, the recording sink process,
worker and beat processes (its own PostgreSQL server is in ``postgres.py``, network
namespaces in ``netns.py``). Each is started by the scenario and stopped by it, whatever
happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.chaos.sink import SinkFaults

ROOT = Path(__file__).resolve().parents[2]
FAKETIME_LIBS = (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"),
)


class Unavailable(RuntimeError):
    """Something a scenario needs is missing here; the scenario is skipped with this reason."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes] | None, *, group: bool = True) -> None:
    """SIGTERM (the process group), then SIGKILL after a grace period."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


# -- the recording sink --------------------------------------------------------------------------


@dataclass
class SinkProcess:
    """The sink of ``benchmarks.chaos.sink`` running as a process of its own."""

    work: Path
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _read_to: int = 0
    _accepted: int = 0

    @property
    def journal(self) -> Path:
        return self.work / "sink.journal"

    @property
    def control(self) -> Path:
        return self.work / "sink.control.json"

    def start(self, faults: SinkFaults | None = None) -> SinkProcess:
        self.port = self.port or free_port()
        (faults or SinkFaults()).write(self.control)
        argv = [sys.executable, "-m", "benchmarks.chaos.sink", "--port", str(self.port)]
        for host in self.hosts:
            argv += ["--host", host]
        argv += ["--journal", str(self.journal), "--control", str(self.control)]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "sink.log").open("wb"),
            start_new_session=True,
        )
        wait_port(self.hosts[0], self.port)
        return self

    def set_faults(self, faults: SinkFaults) -> None:
        faults.write(self.control)
        time.sleep(0.15)  # the sink polls the file every 50 ms

    def accepted(self) -> int:
        """Messages journalled so far (reads only what was appended since the last call)."""
        try:
            with self.journal.open("rb") as f:
                f.seek(self._read_to)
                chunk = f.read()
        except OSError:
            return self._accepted
        complete = chunk.rfind(b"\n") + 1  # a line being written is counted next time
        self._accepted += (b"\n" + chunk[:complete]).count(b"\nA\t")
        self._read_to += complete
        return self._accepted

    def stop(self) -> None:
        stop_process(self.proc)


# -- a private Redis -----------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """``redis-server`` on a free port of its own, no persistence: FLUSHALL-able, killable."""

    work: Path
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.hosts[0]}:{self.port}/0"

    def url_for(self, host: str) -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed (apt-get install redis-server)")
        self.port = self.port or free_port()
        argv = [binary, "--port", str(self.port), "--bind", *self.hosts]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.work)]
        argv += ["--protected-mode", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(
            argv,
            stdout=(self.work / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.hosts[0], self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def flushall(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        stop_process(self.proc)


# -- workers and beat ----------------------------------------------------------------------------


def faketime_unavailable() -> str | None:
    if any(lib.exists() for lib in FAKETIME_LIBS):
        return None
    return "libfaketime is not installed (apt-get install faketime)"


def faketime_env(offset_seconds: int) -> dict[str, str]:
    """Environment that runs a process with its clock ``offset_seconds`` off (libfaketime)."""
    for lib in FAKETIME_LIBS:
        if lib.exists():
            return {
                "LD_PRELOAD": str(lib),
                "FAKETIME": f"{offset_seconds:+d}",
                "FAKETIME_DONT_RESET": "1",
            }
    raise Unavailable("libfaketime is not installed (apt-get install faketime)")


@dataclass
class Worker:
    """One worker host: a ``celery worker`` process (its own session) with prefork children."""

    name: str
    env: dict[str, str]
    concurrency: int
    log: Path
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        argv = [
            *netns_prefix(self.netns),
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "--loglevel", "WARNING", "--pool", "prefork",
            "--concurrency", str(self.concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--prefetch-multiplier", "1", "-n", f"{self.name}@%h",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


def start_beat(env: dict[str, str], work: Path) -> subprocess.Popen[bytes]:
    """Celery beat on its own (as in docker-compose), so killing workers leaves it running."""
    argv = [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "WARNING"]
    argv += ["--schedule", str(work / "celerybeat-schedule")]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=(work / "beat.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_workers(redis_url: str, count: int, timeout: float = 90.0) -> None:
    """Until ``count`` workers answer a ping over the broker (their pools are up)."""
    from celery import Celery

    probe = Celery("chaos-probe", broker=redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if len(probe.control.ping(timeout=0.5)) >= count:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{count} workers did not answer within {timeout:.0f}s")
    finally:
        probe.close()
