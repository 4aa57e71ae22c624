"""A PostgreSQL server of a chaos scenario's own, so that it can be killed -9."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.chaos.infra import Unavailable, free_port, netns_prefix

PG_BIN = Path("/usr/lib/postgresql/15/bin")


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

    @staticmethod
    def unavailable() -> str | None:
        """Why a private server cannot run here (None: it can)."""
        if not (PG_BIN / "initdb").exists():
            return f"PostgreSQL 15 server binaries not found in {PG_BIN}"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser, and PostgreSQL refuses root"
        return None

    def start(self) -> PrivatePostgres:
        reason = self.unavailable()
        if reason:
            raise Unavailable(reason)
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
