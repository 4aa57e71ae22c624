"""One chaos scenario from start to verdict: private services, a seeded database, real
worker processes, one send, the faults, then the sink's journal against the ledger.

Every knob of the product is set through its real configuration (environment variables read
by ``Settings.from_env`` in each worker process); nothing in the product is patched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from benchmarks.bench_send import seed
from benchmarks.chaos.check import PENDING, Verdict, check, read_journal
from benchmarks.chaos.config import Config
from benchmarks.chaos.infra import (
    PrivateRedis,
    SinkProcess,
    Unavailable,
    Worker,
    start_beat,
    stop_process,
    wait_workers,
)
from benchmarks.chaos.outcome import Outcome
from benchmarks.chaos.postgres import PrivatePostgres
from benchmarks.chaos.sink import SinkFaults
from benchmarks.throwaway_db import create_database, drop_database
from distributor.app import create_app
from distributor.db import Database, make_engine
from distributor.delivery import services
from distributor.migrate import upgrade
from distributor.settings import Settings


class Run:
    """The services and processes of one scenario, and the faults it can inject."""

    def __init__(self, cfg: Config, work: Path, *, private_pg: bool) -> None:
        self.cfg = cfg
        self.work = work
        self.private_pg = private_pg
        self.redis = PrivateRedis(work, hosts=list(cfg.service_hosts))
        self.sink = SinkProcess(work, hosts=list(cfg.service_hosts))
        self.pg: PrivatePostgres | None = None
        self.db_url = ""
        self.db_name = ""
        self.engine: Engine | None = None
        self.workers: list[Worker] = []
        self.beat: subprocess.Popen[bytes] | None = None
        self.dropped = 0
        self.secret = secrets.token_hex(32)
        self.env_overrides: dict[str, str] = {}
        self.worker_overrides: dict[int, dict[str, str]] = {}
        self.send_id = 0
        self.release_id = 0
        self.notes: list[str] = []
        self.on_done: list[Callable[[], None]] = []  # after the send finished, before checking
        self.fault_over = True  # the send may be resumed by "staff" once the fault is over

    # -- environment -------------------------------------------------------------------------

    def _urls(self, host: str) -> dict[str, str]:
        db_url = self.db_url
        if host != "127.0.0.1" and self.pg is not None:
            db_url = self.pg.url_for(host, self.db_name)
        return {
            "DATABASE_URL": db_url,
            "REDIS_URL": self.redis.url_for(host),
            "SMTP_URL": f"smtp://{host}:{self.sink.port}?timeout=5",
        }

    def env(self, host: str = "127.0.0.1", extra: dict[str, str] | None = None) -> dict[str, str]:
        """A worker host's environment: the product's own settings, nothing patched."""
        cfg = self.cfg
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DELIVERY_", "DATABASE_", "REDIS_", "SMTP_", "FAKETIME"))
            and k != "LD_PRELOAD"
        }
        env.update(
            DISTRIBUTOR_ENV="production",
            SECRET_KEY=self.secret,
            DATA_DIR=str(self.work),
            DEV_INBOX="false",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            DELIVERY_BATCH_SIZE=str(cfg.batch),
            DELIVERY_PARALLEL_BATCHES=str(cfg.workers * cfg.concurrency),
            DELIVERY_CONNECTIONS_PER_BATCH=str(cfg.lanes),
            DELIVERY_CLAIM_TIMEOUT_SECONDS=str(cfg.claim_timeout),
            DELIVERY_RETRY_BASE_SECONDS="2",
            DELIVERY_RETRY_MAX_SECONDS="8",
            DELIVERY_DOMAIN_BACKOFF_SECONDS="5",
        )
        env.update(self._urls(host))
        env.update(self.env_overrides)
        env.update(extra or {})
        return env

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    # -- lifecycle ---------------------------------------------------------------------------

    def start_services(self) -> None:
        self.redis.start()
        if self.private_pg:
            # Not under the work dir: that may sit where user postgres cannot reach (pytest's).
            pg_dir = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
            self.pg = PrivatePostgres(pg_dir, hosts=list(self.cfg.service_hosts)).start()
            self.db_url, self.db_name = create_database(self.pg.server_url, "chaos")
        else:
            self.db_url, self.db_name = create_database(self.cfg.server_url, "chaos")
        self.sink.start()

    def seed(self) -> None:
        settings = self.settings()
        self.engine = make_engine(settings.sqlalchemy_url)
        with self.engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        self.release_id = seed(
            Database(self.engine), settings, self.cfg.n, self.cfg.domains, self.cfg.paragraphs
        )

    def start_workers(self, *, wait: bool = True) -> None:
        self.workers = []
        for i in range(self.cfg.workers):
            host, netns = ("127.0.0.1", None)
            if self.cfg.worker_hosts:
                host, netns = self.cfg.worker_hosts[i]
            worker = Worker(
                name=f"chaos{i}",
                env=self.env(host, self.worker_overrides.get(i)),
                concurrency=self.cfg.concurrency,
                log=self.work / f"worker{i}.log",
                netns=netns,
            )
            self.workers.append(worker.start())
        if wait:
            self.wait_workers()

    def wait_workers(self) -> None:
        wait_workers(self.redis.url, len(self.workers))

    def start_beat(self) -> None:
        self.beat = start_beat(self.env(), self.work)

    def _app(self) -> Flask:
        assert self.engine is not None
        return create_app(self.settings(), db=Database(self.engine))

    def start_send(self) -> None:
        app = self._app()
        with app.app_context(), app.extensions["distributor.db"].session() as session:
            with session.begin():
                send = services.start_send(session, self.release_id, requested_by_id=None)
            self.send_id = send.id

    def resume(self) -> None:
        """What staff do once the cause of a pause is fixed: press Resume."""
        app = self._app()
        with (
            app.app_context(),
            app.extensions["distributor.db"].session() as session,
            session.begin(),
        ):
            services.resume_send(session, self.release_id)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        stop_process(self.beat)
        self.sink.stop()

    def cleanup(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        with contextlib.suppress(Exception):
            if self.db_name and not self.cfg.keep:
                server = self.pg.server_url if self.pg is not None else self.cfg.server_url
                drop_database(server, self.db_name)
        self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
            with contextlib.suppress(OSError):
                shutil.copy(self.pg.work / "pg.log", self.work / "postgres.log")
            if not self.cfg.keep:
                shutil.rmtree(self.pg.work, ignore_errors=True)

    # -- watching the send -------------------------------------------------------------------

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), {"s": self.send_id}).all()]

    def send_state(self) -> tuple[str, int] | None:
        """(send status, pending rows), or None while the database cannot be reached."""
        try:
            status = self._query("SELECT status FROM sends WHERE id = :s")[0][0]
            pending = self._query(
                "SELECT count(*) FROM deliveries WHERE send_id = :s AND status IN "
                "(" + ",".join(f"'{p}'" for p in sorted(PENDING)) + ")"
            )[0][0]
        except (DBAPIError, IndexError):
            return None
        return str(status), int(pending)  # type: ignore[call-overload]

    def note_fault(self, what: str) -> None:
        """Say in the scenario's line what was done, and how far the send was then."""
        self.notes.append(f"{what} at {self.sink.accepted()}/{self.cfg.n} accepted")

    def wait_accepted(self, fraction: float, timeout: float = 300.0) -> bool:
        """Until the sink has accepted ``fraction`` of the recipients (False: it never did)."""
        goal = max(1, int(self.cfg.n * fraction))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sink.accepted() >= goal:
                return True
            state = self.send_state()
            if state is not None and state[0] in ("finished", "paused", "cancelled"):
                return False
            time.sleep(0.05)
        return False

    def wait_done(self, timeout: float) -> None:
        """Until the send is finished with nothing pending (rows pending at the deadline
        count as lost). A send paused while a fault was on is resumed once it is over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.send_state()
            if state is not None:
                status, pending = state
                if status == "finished" and pending == 0:
                    return
                if status == "paused" and self.fault_over:
                    self.notes.append("the send paused; resumed after the fault")
                    self.resume()
            time.sleep(0.25)
        self.notes.append(f"not finished after {timeout:.0f}s")

    def verdict(self) -> Verdict:
        assert self.engine is not None
        journal = read_journal(self.sink.journal)
        verdict = check(self.engine, self.send_id, journal)
        self.dropped = journal.dropped
        if journal.blackholed:
            self.notes.append(f"sink blackholed {journal.blackholed} connections")
        if journal.refusals:
            self.notes.append(
                "sink refused "
                + ", ".join(f"{k}: {n}" for k, n in sorted(journal.refusals.items()))
            )
        return verdict


@dataclass
class Scenario:
    name: str
    about: str
    inject: Callable[[Run], None]
    # Fault events, each of which can leave every connection it touched mid-final-dot.
    events: int = 1
    # Whose connections a fault event touches: every worker host's, or one host's.
    is_one_host: bool = False
    private_pg: bool = False
    sink_faults: SinkFaults = field(default_factory=SinkFaults)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Run], None] | None = None  # before the workers start
    unavailable: Callable[[Config], str | None] | None = None

    def bound(self, cfg: Config, dropped: int) -> int:
        per_event = cfg.connections_per_worker if self.is_one_host else cfg.connections
        return self.events * per_event + dropped


def _phase(name: str, what: str, since: float) -> None:
    if os.environ.get("CHAOS_VERBOSE"):
        print(f"  [{name}] {what} at {time.monotonic() - since:.1f}s", file=sys.stderr, flush=True)


def prerequisites(scenario: Scenario, cfg: Config) -> str | None:
    """Why ``scenario`` cannot run on this machine (None: it can)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if scenario.private_pg and (reason := PrivatePostgres.unavailable()):
        return reason
    return scenario.unavailable(cfg) if scenario.unavailable is not None else None


def run_scenario(scenario: Scenario, cfg: Config) -> Outcome:
    outcome = Outcome(scenario.name)
    reason = prerequisites(scenario, cfg)
    if reason:
        outcome.skipped = reason
        return outcome
    work = cfg.work_root / scenario.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = Run(cfg, work, private_pg=scenario.private_pg)
    run.env_overrides.update(scenario.env)
    started = t0 = time.monotonic()
    try:
        try:
            run.start_services()
            if scenario.prepare is not None:
                scenario.prepare(run)
        except Unavailable as exc:
            outcome.skipped = str(exc)
            return outcome
        _phase(scenario.name, "services up", t0)
        # Workers take a while to start: let them while the database is seeded.
        run.start_beat()
        run.start_workers(wait=False)
        run.seed()
        run.sink.set_faults(scenario.sink_faults)
        _phase(scenario.name, "seeded", t0)
        run.wait_workers()
        started = time.monotonic()
        _phase(scenario.name, "workers up", t0)
        run.start_send()
        _phase(scenario.name, "send started", t0)
        try:
            scenario.inject(run)
        finally:
            run.fault_over = True
        _phase(scenario.name, "faults done", t0)
        run.wait_done(timeout=max(180.0, cfg.n / 40))
        _phase(scenario.name, "send done", t0)
        for hook in run.on_done:
            hook()
        time.sleep(cfg.settle_seconds)  # what a stalled worker still does after the send
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.seconds = time.monotonic() - started
        run.stop()
        try:
            if run.send_id:
                outcome.verdict = run.verdict()
                outcome.bound = scenario.bound(cfg, run.dropped)
        except Exception as exc:
            outcome.error = f"checking failed: {type(exc).__name__}: {exc}"
        outcome.notes = run.notes
        run.cleanup()
        if not cfg.keep and outcome.is_ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            outcome.notes.append(f"logs and journal kept in {work}")
    return outcome
