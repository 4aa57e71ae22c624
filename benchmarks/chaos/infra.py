"""The private pieces a chaos scenario runs on: its own Redis, its own PostgreSQL server (for
the scenario that kills it), the recording sink process, worker and beat processes, and
network namespaces. Each is started by the scenario and stopped by it, whatever happens.
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
PG_BIN = Path("/usr/lib/postgresql/15/bin")
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


def wait_port(host: str, port: int, timeout: float = 20.0, netns: str | None = None) -> None:
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


# -- a private PostgreSQL ------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of our own (initdb in a temp dir, free port) that may be killed -9.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user (runuser).
    """

    work: Path
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 0
    netns: str | None = None

    @property
    def data(self) -> Path:
        return self.work / "pgdata"

    @property
    def server_url(self) -> str:
        return self.url_for(self.hosts[0])

    def url_for(self, host: str, database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def start(self) -> PrivatePostgres:
        if not (PG_BIN / "initdb").exists():
            raise Unavailable(f"PostgreSQL 15 server binaries not found in {PG_BIN}")
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            raise Unavailable("running as root without runuser: PostgreSQL refuses root")
        self.port = self.port or free_port()
        self.work.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                shutil.chown(self.work, "postgres")
            except (LookupError, OSError) as exc:
                raise Unavailable(f"cannot hand a data directory to user postgres: {exc}") from exc
        if not self.data.exists():
            result = subprocess.run(
                self._as_owner(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ]
                ),
                capture_output=True,
                check=False,
            )
            if result.returncode != 0:
                raise Unavailable(f"initdb failed: {result.stderr.decode(errors='replace')[-300:]}")
            with (self.data / "pg_hba.conf").open("a") as hba:
                for host in self.hosts:
                    hba.write(f"host all all {host}/32 trust\n")
                hba.write("host all all samenet trust\n")
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses='{','.join(self.hosts)}' "
            f"-c unix_socket_directories='{self.work}' -c max_connections=200 "
            "-c shared_buffers=64MB"
        )
        argv = self._as_owner(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.work / "pg.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        result = subprocess.run(
            netns_prefix(self.netns) + argv, capture_output=True, check=False, timeout=90
        )
        if result.returncode != 0:
            log = (self.work / "pg.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"pg_ctl start failed: {result.stderr!r} {log}")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill9(self) -> None:
        """Crash the server: SIGKILL to the postmaster and every backend at the same moment."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for victim in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def restart_after_crash(self) -> None:
        self._start_server()

    def stop(self) -> None:
        if self.postmaster_pid() is None or not self.data.exists():
            return
        subprocess.run(
            netns_prefix(self.netns)
            + self._as_owner(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
            check=False,
            timeout=60,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- workers and beat ----------------------------------------------------------------------------


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


# -- network namespaces --------------------------------------------------------------------------


def netns_available() -> str | None:
    """None when network namespaces can be used here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"chaos-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.decode(errors='replace').strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.decode(errors='replace')}")
