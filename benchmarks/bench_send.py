"""``make bench-send N=100000``: one release to N journalists through real workers.

Creates a throwaway PostgreSQL database (server from DATABASE_URL), migrates and seeds it,
starts a local SMTP sink (Postfix's ``smtp-sink`` when it can be found or unpacked from
Debian's package, else a small asyncio sink), starts real Celery worker processes on Redis,
calls ``start_send`` and waits until every delivery row is final. Before the send and again
after it, it measures the raw SMTP rate of this machine for the same message size into the same
sink (``smtp-source``, or a raw pipelined client), three rounds each time; Y below is the median
of the six rounds. It prints as its last line:

    send: <N> messages, <X> msg/s end to end, raw SMTP <Y> msg/s, ratio <X/Y>
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from benchmarks.private_redis import start_private_redis, stop_private_redis  # noqa: E402
from benchmarks.sinks import RawRate, Sink, raw_smtp_rate, start_sink  # noqa: E402
from benchmarks.throwaway_db import create_database, drop_database  # noqa: E402
from distributor.app import create_app  # noqa: E402
from distributor.audience.models import Beat, Journalist, Subscription  # noqa: E402
from distributor.db import Database, make_engine, utcnow  # noqa: E402
from distributor.delivery import services  # noqa: E402
from distributor.delivery.ledger import PENDING_STATUSES, count_pending, has_pending  # noqa: E402
from distributor.delivery.models import Delivery, SendStatus  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.organisation.services import ensure_organisation  # noqa: E402
from distributor.releases.models import (  # noqa: E402
    Release,
    ReleaseKind,
    ReleaseStatus,
    release_beats,
)
from distributor.settings import Settings  # noqa: E402

PARAGRAPH = (
    "<p>Portmere's sea wall will be raised by <strong>1.2 metres</strong> before winter, the "
    "council confirmed today, after three storms in two years pushed water into Quay Street. "
    "The work starts in March and closes the promenade for eleven weeks; local businesses "
    "will be compensated from the resilience fund agreed last spring.</p>"
)


def log(message: str) -> None:
    print(f"[bench-send] {message}", flush=True)


def seed(db: Database, settings: Settings, n: int, domains: int, paragraphs: int) -> int:
    """N journalists on one beat, one approved release; returns the release id."""
    now = utcnow()
    with db.session() as session, session.begin():
        ensure_organisation(session, settings)
        beat = Beat(name="Climate", slug="climate")
        kind = ReleaseKind(name="Press release", slug="press-release")
        session.add_all([beat, kind])
        session.flush()
        chunk = 20_000
        for start in range(0, n, chunk):
            rows = [
                {
                    "email": f"journalist{i}@outlet{i % domains}.example",
                    "email_normalized": f"journalist{i}@outlet{i % domains}.example",
                    "name": f"Journalist {i}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, min(n, start + chunk))
            ]
            session.execute(insert(Journalist), rows)
        ids = list(session.scalars(select(Journalist.id)))
        for start in range(0, len(ids), chunk):
            session.execute(
                insert(Subscription),
                [
                    {
                        "journalist_id": jid,
                        "beat_id": beat.id,
                        "status": "confirmed",
                        "confirmed_at": now,
                        "created_at": now,
                    }
                    for jid in ids[start : start + chunk]
                ],
            )
        release = Release(
            kind_id=kind.id,
            title="Sea wall to be raised before winter",
            slug="sea-wall",
            summary="The council approved a £4m plan to protect 2,000 homes from storm surges.",
            body_html=PARAGRAPH * paragraphs,
            body_markdown="",
            status=ReleaseStatus.APPROVED,
            preview_token=secrets.token_urlsafe(16),
            published_at=now,
        )
        session.add(release)
        session.flush()
        session.execute(insert(release_beats).values(release_id=release.id, beat_id=beat.id))
        return release.id


def rss_mb_of(*pids: int) -> dict[int, float]:
    """RSS of these processes, in MB."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return out


def _tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    out = [pid]
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
    except FileNotFoundError:
        return out
    for child in children:
        out += _tree(int(child))
    return out


def _named(name: str) -> list[int]:
    try:
        found = subprocess.run(
            ["pgrep", "-x", name], capture_output=True, text=True, check=False
        ).stdout.split()
    except FileNotFoundError:
        return []
    return [int(p) for p in found]


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return ""


def postgres_pids(engine: Any, db_name: str) -> Callable[[], list[int]]:
    """The processes of the PostgreSQL server that holds ``db_name`` and work for it: its
    backends for this database and the server's background processes (WAL writer,
    checkpointer, autovacuum). Backends of other databases on a shared server (someone
    else's tests) are left out; without access to the server's data directory every local
    ``postgres`` process is a candidate."""
    postmaster: int | None = None
    with contextlib.suppress(Exception), engine.connect() as conn:
        data_dir = conn.exec_driver_sql("SHOW data_directory").scalar()
        postmaster = int((Path(str(data_dir)) / "postmaster.pid").read_text().split()[0])

    def pids() -> list[int]:
        candidates = _tree(postmaster)[1:] if postmaster else _named("postgres")
        out = []
        for pid in candidates:
            cmd = _cmdline(pid)
            is_backend = "(" in cmd or "[local]" in cmd or " idle" in cmd
            if db_name in cmd or (cmd.startswith("postgres: ") and not is_backend):
                out.append(pid)
        return out

    return pids


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of these processes (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


class CpuMeter:
    """CPU used by each part of the benchmark between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, tuple[float, float]]] = {}
        self.used: dict[str, float] = {}
        self.system: dict[str, float] = {}

    def _sample(self) -> dict[str, dict[int, tuple[float, float]]]:
        return {
            name: {pid: cpu_seconds([pid]) for pid in pids()} for name, pids in self.groups.items()
        }

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> None:
        after = self._sample()
        for name in self.groups:
            user = system = 0.0
            for pid, (u, s) in after[name].items():
                u0, s0 = self.before[name].get(pid, (0.0, 0.0))
                user += u - u0
                system += s - s0
            self.used[name] = user + system
            self.system[name] = system


def start_workers(
    env: dict[str, str], processes: int, concurrency: int
) -> list[subprocess.Popen[bytes]]:
    procs = []
    logs = Path(env["DATA_DIR"])
    for i in range(processes):
        argv = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "--loglevel", env["LOG_LEVEL"], "--pool", "prefork", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--prefetch-multiplier", "1", "-n", f"bench{i}@%h",
        ]  # fmt: skip
        if i == 0:
            argv += ["-B", "--schedule", str(logs / "celerybeat-schedule")]
        out = (logs / f"worker{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def wait_ready(redis_url: str, count: int, timeout: float = 60) -> None:
    """Until every worker answers a ping over the broker (their pools are up)."""
    from celery import Celery

    probe = Celery("bench-probe", broker=redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            replies = probe.control.ping(timeout=0.5)
            if len(replies) >= count:
                return
        raise SystemExit(f"workers did not answer within {timeout:.0f}s")
    finally:
        probe.close()


def main() -> int:
    # A SIGTERM (timeout, Ctrl-C in make) must still stop the workers: they run in sessions of
    # their own and would otherwise keep taking tasks from the broker in the next run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=int(os.environ.get("N", "100000")))
    parser.add_argument("--processes", type=int, default=int(os.environ.get("BENCH_WORKERS", "1")))
    # Two prefork children per core. Each child drives DELIVERY_CONNECTIONS_PER_BATCH
    # connections from one event loop, and a batch spends part of its time waiting: on the
    # relay's replies and on its durable acceptance commits. With one child per core the 2-core
    # machine stayed about a fifth idle. At N=100,000, alternating, quiet machine
    # (2026-12-01), one child per core sent 3,294-3,541 msg/s and two sent 3,819-4,015.
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("BENCH_CONCURRENCY", str(2 * (os.cpu_count() or 2)))),
    )
    # SMTP connections (lanes) per batch. Every lane waits for its last acceptance to be
    # committed before its next final dot, so one acceptance statement holds at most one row
    # per lane: the lanes of a batch set how many rows share a durable commit. The sink, like
    # a relay of one's own on the LAN, takes any number of connections, so the bench drives 32
    # (the product's default of 8 suits relays with connection limits: docs/RELAYS.md). At
    # N=100,000 on the 2-core machine (2026-12-01), one run each: 8 lanes 2,028 msg/s with
    # PostgreSQL at 216 us a message; 16: 2,304 and 164; 32: 2,544 and 137; 64: 2,423 and 133.
    parser.add_argument(
        "--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "32"))
    )
    parser.add_argument("--domains", type=int, default=1000)
    # 24 paragraphs (about 1,300 words) make a message of about 32 KB with the release
    # template: the size the reference raw SMTP figure was measured at.
    parser.add_argument("--paragraphs", type=int, default=24)
    parser.add_argument("--batch", type=int, default=int(os.environ.get("BENCH_BATCH", "1000")))
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    # A broker of our own, so no task of an earlier run is waiting in it (a shared Redis is
    # never flushed); REDIS_URL only when redis-server is not installed.
    private_redis = (
        start_private_redis("bench-send-redis-") if shutil.which("redis-server") else None
    )
    redis_url = (
        private_redis[1]
        if private_redis is not None
        else os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
    )
    data_dir = Path(os.environ.get("BENCH_DIR", "/tmp/bench-send"))
    data_dir.mkdir(parents=True, exist_ok=True)

    db_url, db_name = create_database(server, "bench_send")
    log(f"database {db_name}")
    sink: Sink | None = None
    workers: list[subprocess.Popen[bytes]] = []
    try:
        sink = start_sink(data_dir)
        log(f"sink: {sink.kind} on port {sink.port}")
        settings = Settings(
            env="production",
            secret_key=secrets.token_hex(32),
            database_url=db_url,
            redis_url=redis_url,
            # BENCH_SMTP_URL sends through a relay instead (bench_relay: a private Postfix).
            smtp_url=os.environ.get("BENCH_SMTP_URL") or f"smtp://127.0.0.1:{sink.port}",
            data_dir=str(data_dir),
            dev_inbox_enabled=False,
            log_level="WARNING",
            delivery_batch_size=args.batch,
        )
        engine = make_engine(settings.sqlalchemy_url)
        with engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        db = Database(engine)
        t0 = time.perf_counter()
        release_id = seed(db, settings, args.n, args.domains, args.paragraphs)
        log(f"seeded {args.n} journalists in {time.perf_counter() - t0:.1f}s")
        # The planner's statistics of the seeded tables, as autovacuum would have them in
        # production (a server with autovacuum off would otherwise plan the freeze and the
        # acceptances over tables it believes empty).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE journalists, subscriptions")
        app = create_app(settings, db=db)
        with app.app_context(), db.session() as session:
            from distributor.delivery.sender import compiled_release

            sample = compiled_release(session, release_id, settings).message_for(
                _sample_recipient()
            )[2]
        # The raw rate is taken in three rounds before the send and three after it, and the
        # ratio is to the median of the six: this machine's speed drifts by a fifth within
        # minutes (a virtual machine on a shared host). A mean of one reading before and one
        # after printed "ratio 1.04" once, when a stall of the host halved the reading after
        # (2,292 msg/s against 3,982 before); a median is not moved by one such round.
        per_round = max(1, min(args.n, 50_000) // RAW_ROUNDS)
        raw_before = raw_rounds(sink, len(sample), per_round)
        log("raw SMTP before the send: " + _rates(raw_before) + " msg/s")

        env = dict(
            os.environ,
            DISTRIBUTOR_ENV="production",
            SECRET_KEY=settings.secret_key,
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            SMTP_URL=settings.smtp_url,
            DATA_DIR=str(data_dir),
            DEV_INBOX="false",
            LOG_LEVEL=os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
            DELIVERY_BATCH_SIZE=str(args.batch),
            DELIVERY_PARALLEL_BATCHES=str(args.processes * args.concurrency * 2),
            DELIVERY_CONNECTIONS_PER_BATCH=str(args.connections),
            PYTHONUNBUFFERED="1",
        )
        workers = start_workers(env, args.processes, args.concurrency)
        wait_ready(redis_url, args.processes)

        peak: dict[int, float] = {}
        running_sink = sink
        meter = CpuMeter(
            {
                "workers": lambda: [p for w in workers for p in _tree(w.pid)],
                "postgres": postgres_pids(engine, db_name),
                # Our own redis-server when we started one (others' are not ours to count).
                "redis": (
                    (lambda: [private_redis[0].pid])
                    if private_redis is not None
                    else (lambda: _named("redis-server"))
                ),
                "sink": lambda: [running_sink.process.pid],
                "bench": lambda: [os.getpid()],
            }
        )
        meter.start()
        with app.app_context():
            started = time.perf_counter()
            with db.session() as session, session.begin():
                send = services.start_send(session, release_id, requested_by_id=None)
                send_id = send.id
            frozen = time.perf_counter() - started
            log(f"start_send (freeze {args.n} rows) took {frozen:.2f}s")
            last_report = started
            last_rss = 0.0
            worker_pids = [p for w in workers for p in _tree(w.pid)]
            # The send is finished when its last batch finds no row pending (the product's
            # own completion signal, a primary-key read); once a second the rows themselves
            # are counted too, so a send that never flips to finished cannot hang the run.
            last_count = started
            # A raw connection and a prepared statement: the poll should not take CPU from the
            # send it measures.
            poll = engine.raw_connection()
            # Autocommit: one statement per look, no BEGIN/ROLLBACK around it.
            poll.driver_connection.autocommit = True
            poll_cursor = poll.driver_connection.cursor()
            while True:
                poll_cursor.execute(
                    "SELECT status FROM sends WHERE id = %s", (send_id,), prepare=True
                )
                row = poll_cursor.fetchone()
                if row is not None and row[0] == SendStatus.FINISHED.value:
                    break
                now = time.perf_counter()
                if now - last_count >= 1:
                    last_count = now
                    # The ledger's own look-ups (index reads, never a walk over sent rows).
                    with db.session() as session:
                        busy = has_pending(session, send_id)
                    if not busy:
                        break
                now = time.perf_counter()
                if now - last_rss >= 1:
                    last_rss = now
                    for pid in worker_pids:
                        for _, mb in rss_mb_of(pid).items():
                            peak[pid] = max(peak.get(pid, 0.0), mb)
                    if any(w.poll() is not None for w in workers):
                        raise SystemExit("a worker died; see its log in " + str(data_dir))
                if now - last_report > 10:
                    last_report = now
                    with db.session() as session:
                        pending = count_pending(session, send_id)
                    log(f"{args.n - pending} done after {now - started:.1f}s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            meter.stop()
            poll.driver_connection.autocommit = False
            poll.close()
            with db.session() as session:
                counts = dict(
                    session.execute(
                        select(Delivery.status, func.count(Delivery.id))
                        .where(Delivery.send_id == send_id)
                        .group_by(Delivery.status)
                    ).all()
                )
                retried = session.scalar(
                    select(func.count(Delivery.id)).where(
                        Delivery.send_id == send_id, Delivery.attempts > 1
                    )
                )
        rate = args.n / elapsed
        still = {str(k): v for k, v in counts.items() if k in PENDING_STATUSES}
        if still:
            raise SystemExit(f"the send finished with rows still pending: {still}")
        log(f"statuses: { {str(k): v for k, v in counts.items()} }, retried rows: {retried}")
        log(
            f"end to end: {elapsed:.2f}s, message size {len(sample)} bytes; "
            f"{args.processes} worker process(es) x {args.concurrency} children, "
            f"batches of {args.batch}, "
            f"{args.connections} SMTP connections per batch"
        )
        log(
            "CPU per message (us): "
            + ", ".join(
                f"{k} {v / args.n * 1e6:.0f} (kernel {meter.system[k] / args.n * 1e6:.0f})"
                for k, v in meter.used.items()
            )
            + f", total {sum(meter.used.values()) / args.n * 1e6:.0f}"
            + f" (machine capacity {os.cpu_count() or 1} cores = "
            + f"{(os.cpu_count() or 1) / rate * 1e6:.0f} us per message at this rate)"
        )
        log("worker RSS MB (peak per process): " + ", ".join(f"{v:.0f}" for v in peak.values()))
        figures: dict[str, Any] = {
            "n": args.n,
            "seconds": round(elapsed, 2),
            "rate": round(rate, 1),
            "freeze_seconds": round(frozen, 2),
            "cpu_us": {k: round(v / args.n * 1e6, 1) for k, v in meter.used.items()},
            "worker_rss_mb": round(max(peak.values(), default=0.0), 1),
        }
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(30)
        workers = []
        raw_after = raw_rounds(sink, len(sample), per_round)
        rounds = [r.rate for r in raw_before + raw_after]
        raw_rate = statistics.median(rounds)
        log(
            f"raw SMTP: {RAW_ROUNDS} rounds of {per_round} messages of "
            f"{len(sample)} bytes before the send and after it, {raw_after[0].method}: "
            f"{_rates(raw_before)} msg/s before, {_rates(raw_after)} after, median "
            f"{raw_rate:.0f}"
        )
        figures.update(
            raw_rate=round(raw_rate, 1),
            raw_before=round(statistics.median(r.rate for r in raw_before), 1),
            raw_after=round(statistics.median(r.rate for r in raw_after), 1),
            raw_rounds=[round(r, 1) for r in rounds],
            ratio=round(rate / raw_rate, 3),
        )
        # One line for tools (bench_send_scale): the figures above as JSON.
        log("figures " + json.dumps(figures, sort_keys=True))
        print(
            f"send: {args.n} messages, {rate:.0f} msg/s end to end, "
            f"raw SMTP {raw_rate:.0f} msg/s, ratio {rate / raw_rate:.2f}",
            flush=True,
        )
        return 0
    finally:
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, signal.SIGKILL)
        if sink is not None:
            sink.stop()
        if not args.keep:
            drop_database(server, db_name)
        if private_redis is not None:
            stop_private_redis(private_redis[0])


RAW_ROUNDS = 3


def raw_rounds(sink: Sink, size: int, per_round: int) -> list[RawRate]:
    """The raw SMTP rate in ``RAW_ROUNDS`` rounds of ``per_round`` messages each."""
    return [raw_smtp_rate(sink, size, per_round, sessions=4) for _ in range(RAW_ROUNDS)]


def _rates(rounds: list[RawRate]) -> str:
    return ", ".join(f"{r.rate:.0f}" for r in rounds)


def _sample_recipient():
    from distributor.delivery.rendering import Recipient

    return Recipient(1, 1, "journalist1@outlet1.example", "Journalist 1", "0" * 32, "Climate", True)


if __name__ == "__main__":
    raise SystemExit(main())
