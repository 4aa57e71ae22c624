"""Durable acceptance: the PostgreSQL server is killed -9 in the middle of a send.

The test runs its own PostgreSQL (``initdb`` into a temporary directory, its own port, run as
the ``postgres`` user), its own Redis, a real Celery worker with the sweep, and a recording
SMTP sink. It kills every process of that server with SIGKILL while messages are going out,
starts it again (crash recovery replays the WAL), lets the send finish and checks the sink
against the ledger: nobody got the release twice and nobody was lost. An acceptance the
database had confirmed and then forgot would come back as ``sending`` and be sent again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import func, select

from distributor.app import create_app
from distributor.db import Database, make_engine
from distributor.delivery import services
from distributor.delivery.ledger import PENDING_STATUSES
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.migrate import upgrade
from distributor.settings import Settings
from tests.support.delivery_seed import bulk_release
from tests.support.faulty_smtp import FaultySMTPServer, Script
from tests.support.services import free_port, need
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *argv], check=check, capture_output=True, timeout=120)


def _can_run_postgres() -> str:
    """Empty when a private server can be started, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries in {PG_BIN}"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser to drop to the postgres user"
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user to run the server as"
    return ""


class PrivatePostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgcrash-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/distributor"

    def init(self) -> None:
        _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c synchronous_commit=on -c max_connections=60 "
            # WAL of a commit that did not wait for its flush lingers in memory for seconds,
            # so a kill -9 forgets it for sure: only durable commits survive this server.
            "-c wal_writer_delay=10000 -c wal_buffers=64MB"
        )
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def kill_9(self) -> int:
        """SIGKILL the postmaster and every process it started: a crash, not a shutdown.

        The WAL writer is stopped for a second first: a commit that did not flush its own WAL
        (``synchronous_commit = off``) then sits in shared memory and dies with the server,
        while a durable commit has flushed it itself before it returned."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
                    if b"walwriter" in command:
                        os.kill(int(entry.name), signal.SIGSTOP)
        time.sleep(1.0)
        for victim in [pid, *children]:
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        return len(children) + 1

    def stop(self) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
            check=False,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        import redis

        client = redis.Redis(port=port)
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _counts(db: Database, send_id: int) -> dict[DeliveryStatus, int]:
    with db.session() as session:
        return {
            DeliveryStatus(status): int(n)
            for status, n in session.execute(
                select(Delivery.status, func.count(Delivery.id))
                .where(Delivery.send_id == send_id)
                .group_by(Delivery.status)
            )
        }


def _wait_done(db: Database, send_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            counts = _counts(db, send_id)
            with db.session() as session:
                send = session.get(Send, send_id)
                finished = send is not None and send.status is SendStatus.FINISHED
            if finished and not any(counts.get(s) for s in PENDING_STATUSES):
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"send {send_id} did not finish: {_counts(db, send_id)}")


def test_killing_postgresql_mid_send_loses_and_duplicates_nothing(settings: Settings) -> None:
    reason = _can_run_postgres()
    need(not reason, reason)
    n = 4000
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        _as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(server.port),
                     "-U", "postgres", "distributor")  # fmt: skip
        sqlalchemy_url = server.url.replace("postgresql://", "postgresql+psycopg://")
        engine = make_engine(sqlalchemy_url)
        with engine.begin() as conn:
            upgrade(sqlalchemy_url, conn)
        db = Database(engine)
        with db.session() as session, session.begin():
            release_id, emails = bulk_release(session, n)
        with private_redis() as broker, FaultySMTPServer(Script(reply_delay=0.001)) as sink:
            ours = Settings(
                **{
                    **settings.__dict__,
                    "database_url": server.url,
                    "redis_url": broker,
                    "smtp_url": sink.url,
                }
            )
            env = service_env(
                DATABASE_URL=server.url,
                REDIS_URL=broker,
                SMTP_URL=sink.url,
                DATA_DIR=settings.data_dir,
                LOG_LEVEL="WARNING",
                DELIVERY_BATCH_SIZE="200",
                DELIVERY_RETRY_BASE_SECONDS="1",
                DELIVERY_CLAIM_TIMEOUT_SECONDS="5",
                DELIVERY_PARALLEL_BATCHES="4",
            )
            app = create_app(ours, db=db)
            with app.app_context(), db.session() as session, session.begin():
                send_id = services.start_send(session, release_id, requested_by_id=None).id
            schedule = Path(settings.data_dir) / f"beat-{uuid.uuid4().hex[:8]}"
            with celery_worker(
                env, concurrency=2, extra_args=["-B", "--schedule", str(schedule)]
            ) as worker:
                sink.wait_for_total(n // 4, timeout=120)
                killed = server.kill_9()
                at_crash = sink.total
                time.sleep(2.0)  # the worker finds the database gone and holds what it knows
                server.start()
                engine.dispose()
                _wait_done(db, send_id, timeout=240)
                log = Path(worker.log_path).read_text(errors="replace")
            counts = sink.counts()
        assert killed >= 2 and 0 < at_crash < n, (killed, at_crash)
        with db.session() as session:
            ledger = dict(
                session.execute(
                    select(Delivery.email, Delivery.status).where(Delivery.send_id == send_id)
                ).all()
            )
        assert len(ledger) == n
        twice = [e for e, c in counts.items() if c > 1]
        assert not twice, f"{len(twice)} recipients got the release twice: {twice[:5]}"
        lost = [e for e in emails if ledger[e] is DeliveryStatus.SENT and counts[e] != 1]
        assert not lost, f"recorded sent but never arrived: {lost[:5]}"
        in_doubt = [e for e in emails if ledger[e] is DeliveryStatus.IN_DOUBT]
        assert {ledger[e] for e in emails} <= {DeliveryStatus.SENT, DeliveryStatus.IN_DOUBT}
        # At most one message per connection the workers held is in doubt.
        assert len(in_doubt) <= 2 * 4 * settings.delivery_connections_per_batch, log[-3000:]
        engine.dispose()
    finally:
        server.stop()
