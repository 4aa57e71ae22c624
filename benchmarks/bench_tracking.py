"""``make bench-tracking``: the pixel and click endpoints under a post-send burst.

Creates a throwaway PostgreSQL database (server from DATABASE_URL), starts a private
redis-server on a free loopback port (else uses REDIS_URL, default db 10), migrates the
database and seeds one sent release with ``--recipients`` deliveries and three tracked
links. Starts the app under gunicorn with 2 worker processes of ``--worker-class`` (default
``distributor.tracking.worker.TrackingWorker``, as in production; ``gthread`` for an A/B run)
on loopback against that database and Redis, and drives ``/t/o/<token>.gif`` (75%) and
``/t/c/<token>/<link>`` (25%) for ``--seconds`` with ``--concurrency`` keep-alive connections,
closed loop: ``wrk`` (Debian package) when it is installed, else ``benchmarks/http_load.py``, a
lean epoll client in a process of its own, whose CPU is printed apart from the web workers'
and the bench process's (the flusher's). A flusher
drains the Redis buffer into the database every second while the load runs, as Celery beat
would. Afterwards it flushes until the buffer is empty and counts the stored events. It prints,
as its last line:

    tracking: <R> req/s, p99 <L> ms, lost <K> of <T> events

Before that line, with ``--burst`` (default 100,000; 0 skips it), it prints the same figures
for the Apple Mail Privacy Protection pattern: one pixel fetch per delivery of a second
release, arriving evenly within ``--burst-seconds`` (60) over ``--burst-connections`` (64)
keep-alive connections, open loop (latency counted from when each request was due, so a
server that falls behind cannot slow the arrivals down), the flusher running meanwhile, always
driven by ``http_load.py`` (``wrk`` has no open loop):

    tracking burst: <R> req/s, p99 <L> ms, lost <K> of <T> events

Here ``K`` also counts requests that got no answer at all.

``T`` is the number of requests answered 200 (pixel) or 302 (click) for a real token, each of
which must become exactly one stored event; ``K`` is how many did not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from benchmarks.bench_send import CpuMeter, postgres_pids  # noqa: E402
from benchmarks.private_redis import start_private_redis  # noqa: E402
from benchmarks.throwaway_db import create_database, drop_database  # noqa: E402
from distributor.app import create_app  # noqa: E402
from distributor.audience.models import Journalist  # noqa: E402
from distributor.db import Database, make_engine, utcnow  # noqa: E402
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.organisation.services import ensure_organisation  # noqa: E402
from distributor.releases.models import Release, ReleaseKind, ReleaseStatus  # noqa: E402
from distributor.settings import Settings  # noqa: E402
from distributor.tracking.buffer import (  # noqa: E402
    LOCK_KEY,
    PROCESSING_KEY,
    QUEUE_KEY,
    RedisEventBuffer,
)
from distributor.tracking.links import register_links  # noqa: E402
from distributor.tracking.models import TrackingEvent  # noqa: E402
from distributor.tracking.tasks import flush_events  # noqa: E402
from tests.support.tracking import stored_events  # noqa: E402

WORKER_CLASS = "distributor.tracking.worker.TrackingWorker"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)


def log(message: str) -> None:
    print(f"[bench-tracking] {message}", flush=True)


# -- database --------------------------------------------------------------------------------


def seed(
    db: Database, settings: Settings, recipients: int, *, slug: str = "sea-wall"
) -> tuple[int, list[str], list[int]]:
    """One sent release to ``recipients`` journalists; returns (release id, tokens, link ids)."""
    now = utcnow()
    sent_at = now.replace(microsecond=0) - dt.timedelta(hours=1)
    with db.session() as session, session.begin():
        ensure_organisation(session, settings)
        kind = session.scalar(select(ReleaseKind).where(ReleaseKind.slug == "press-release"))
        if kind is None:
            kind = ReleaseKind(name="Press release", slug="press-release")
            session.add(kind)
            session.flush()
        release = Release(
            kind_id=kind.id,
            title="Sea wall to be raised before winter",
            slug=slug,
            status=ReleaseStatus.SENT,
            preview_token=secrets.token_urlsafe(16),
            published_at=sent_at,
        )
        session.add(release)
        session.flush()
        send = Send(release_id=release.id, status=SendStatus.FINISHED, started_at=sent_at,
                    recipient_count=recipients)  # fmt: skip
        session.add(send)
        session.flush()
        session.execute(
            insert(Journalist),
            [
                {
                    "email": f"{slug}.j{i}@outlet{i % 50}.example",
                    "email_normalized": f"{slug}.j{i}@outlet{i % 50}.example",
                    "name": f"Journalist {i}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(recipients)
            ],
        )
        journalist_ids = list(
            session.scalars(
                select(Journalist.id)
                .where(Journalist.email_normalized.startswith(f"{slug}.j"))
                .order_by(Journalist.id)
            )
        )
        tokens = [secrets.token_urlsafe(18) for _ in journalist_ids]
        session.execute(
            insert(Delivery),
            [
                {
                    "send_id": send.id,
                    "release_id": release.id,
                    "journalist_id": jid,
                    "email": f"{slug}.j{i}@outlet{i % 50}.example",
                    "recipient_domain": f"outlet{i % 50}.example",
                    "status": DeliveryStatus.SENT,
                    "sent_at": sent_at,
                    "verp_token": token,
                    "matched_beats": "Climate",
                    "created_at": now,
                    "updated_at": now,
                }
                for i, (jid, token) in enumerate(zip(journalist_ids, tokens, strict=True))
            ],
        )
        links = register_links(
            session,
            release.id,
            [f"https://harbourlight.example/story/{n}" for n in range(3)],
        )
        return release.id, tokens, list(links.values())


# -- load generator ---------------------------------------------------------------------------


class Stats:
    """What the load generator (``benchmarks/http_load.py``, a process of its own) saw."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.latencies: list[float] = sorted(result["latencies"])
        self.acknowledged: int = result["acknowledged"]  # each must become one stored event
        self.errors: int = result["errors"]
        self.status: dict[int, int] = {int(k): v for k, v in result["status"].items()}
        self.elapsed: float = result["elapsed"]
        self.cpu: float = result["cpu"]  # the client's own CPU seconds during the load

    def p99_ms(self) -> float:
        lat = self.latencies
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0


def load(
    port: int,
    paths: list[str],
    *,
    connections: int,
    user_agent: str,
    real: list[bool] | None = None,
    interval: float | None = None,
    seconds: float | None = None,
) -> Stats:
    """Run the load generator: open loop when ``interval`` is given, else closed loop."""
    job = {
        "host": "127.0.0.1",
        "port": port,
        "paths": paths,
        "real": real,
        "connections": connections,
        "user_agent": user_agent,
        "interval": interval,
        "seconds": seconds,
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.http_load"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return Stats(json.loads(done.stdout))


def plan(tokens: list[str], links: list[int], total: int, seed: int) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    out: list[tuple[str, bool]] = []
    for _ in range(total):
        roll = rng.random()
        if roll < 0.03:  # invalid tokens: answered the same, recorded nowhere
            out.append((f"/t/o/{secrets.token_urlsafe(18)}.gif", False))
            continue
        token = tokens[rng.randrange(len(tokens))]
        if roll < 0.75:
            out.append((f"/t/o/{token}.gif", True))
        else:
            out.append((f"/t/c/{token}/{links[rng.randrange(len(links))]}", True))
    return out


APPLE_MPP_AGENT = "Mozilla/5.0"  # what Apple's Mail Privacy Protection proxies send


def stored_for(db: Database, release_id: int) -> int:
    with db.session() as session:
        return stored_events(session, release_id)


def cpu_seconds(root_pid: int) -> float:
    """User+system CPU of a process and its children (the gunicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [root_pid]
    children = subprocess.run(
        ["pgrep", "-P", str(root_pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    pids += [int(p) for p in children]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
math.randomseed(7)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["User-Agent"] = "%(ua)s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%d %%d %%d %%d %%.3f\\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(99) / 1000))
end
"""


def run_wrk(
    port: int, tokens: list[str], links: list[int], concurrency: int, seconds: float
) -> tuple[int, float, int, float]:
    """Drive the endpoints with wrk: (requests, seconds, acknowledged, p99 ms)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    rng = random.Random(3)
    paths = [
        f"/t/o/{rng.choice(tokens)}.gif"
        if rng.random() < 0.75
        else f"/t/c/{rng.choice(tokens)}/{rng.choice(links)}"
        for _ in range(50_000)
    ]
    (workdir / "paths.txt").write_text("\n".join(paths) + "\n")
    script = workdir / "tracking.lua"
    script.write_text(WRK_SCRIPT % {"paths": workdir / "paths.txt", "ua": USER_AGENT})
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{int(seconds)}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(workdir, ignore_errors=True)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("WRK "))
    requests, duration_us, connect, read, write, status, timeout, p99 = line.split()[1:]
    errors = int(connect) + int(read) + int(write) + int(timeout)
    if errors or int(status):
        log(f"wrk errors: connect {connect}, read {read}, write {write}, timeout {timeout}, "
            f"non-2xx/3xx {status}")  # fmt: skip
    # Every path names a real delivery, so every 2xx/3xx answer is an acknowledged event.
    acknowledged = int(requests) - int(status)
    return int(requests), int(duration_us) / 1e6, acknowledged, float(p99)


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not listen on {host}:{port}")


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk (Debian package) when installed, else benchmarks/http_load.py",
    )
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument(
        "--burst", type=int, default=100_000, help="pixel fetches of the MPP burst (0: none)"
    )
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    parser.add_argument("--burst-connections", type=int, default=64)
    parser.add_argument(
        "--worker-class",
        default=WORKER_CLASS,
        help="gunicorn worker class (gthread: the stock threaded worker, for A/B runs)",
    )
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    private_redis = (
        start_private_redis("bench-tracking-redis-") if shutil.which("redis-server") else None
    )
    if private_redis is not None:
        redis_url = private_redis[1]
    else:  # a shared server: the buffer's keys are deleted before and after the run
        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
    url, name = create_database(server, "bench_tracking")
    log(f"database {name}, redis {redis_url}")
    settings = Settings(
        env="production",
        secret_key=secrets.token_urlsafe(48),
        database_url=url,
        redis_url=redis_url,
        data_dir=str(ROOT / "var" / "bench-tracking"),
        log_level="WARNING",
    )
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    gunicorn: subprocess.Popen[bytes] | None = None
    buffer = RedisEventBuffer.from_url(redis_url)
    buffer.client.delete(QUEUE_KEY, PROCESSING_KEY, LOCK_KEY)
    try:
        engine = make_engine(settings.sqlalchemy_url)
        with engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        db = Database(engine)
        release_id, tokens, links = seed(db, settings, args.recipients)
        log(f"seeded release {release_id}: {len(tokens)} deliveries, {len(links)} links")

        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "DISTRIBUTOR_ENV": "production",
            "SECRET_KEY": settings.secret_key,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "DATA_DIR": settings.data_dir,
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        }
        gunicorn = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "--workers",
                "2",
                "--worker-class",
                args.worker_class,
                "--threads",
                str(args.threads),
                "--bind",
                f"127.0.0.1:{port}",
                "--backlog",
                "2048",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
                "web:app",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", port)
        threads = f" x {args.threads} threads" if args.worker_class != "sync" else ""
        log(f"gunicorn: 2 {args.worker_class} workers{threads} on 127.0.0.1:{port}")

        app = create_app(settings, db=db)
        stop = threading.Event()

        def flusher() -> None:  # what Celery beat's tracking.flush does, every second
            with app.app_context():
                while not stop.wait(1.0):
                    flush_events(app)

        # Warm up both workers (imports, connection pools) before measuring.
        warm = plan(tokens, links, 400, seed=1)
        load(port, [p for p, _ in warm], connections=8, user_agent=USER_AGENT, seconds=30)
        thread = threading.Thread(target=flusher, daemon=True)
        thread.start()
        cpu_before, own_before = cpu_seconds(gunicorn.pid), time.process_time()
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        client_cpu = 0.0
        if use_wrk:
            done, elapsed, acknowledged, p99 = run_wrk(
                port, tokens, links, args.concurrency, args.seconds
            )
        else:
            requests = plan(tokens, links, args.requests, seed=2)
            stats = load(
                port,
                [p for p, _ in requests],
                real=[r for _, r in requests],
                connections=args.concurrency,
                user_agent=USER_AGENT,
                seconds=args.seconds,
            )
            done, acknowledged, elapsed = len(stats.latencies), stats.acknowledged, stats.elapsed
            p99 = stats.p99_ms()
            client_cpu = stats.cpu
            log(f"statuses {stats.status}, errors {stats.errors}")
        web_cpu = cpu_seconds(gunicorn.pid) - cpu_before
        own_cpu = time.process_time() - own_before
        stop.set()
        thread.join()
        client = "wrk" if use_wrk else f"http_load client {client_cpu / max(1, done) * 1000:.2f} ms"
        log(
            f"{'wrk' if use_wrk else 'http_load'}: {done} requests in {elapsed:.1f} s; "
            f"CPU per request: web workers {web_cpu / max(1, done) * 1000:.2f} ms, {client}, "
            f"bench process (flusher) {own_cpu / max(1, done) * 1000:.2f} ms; "
            f"load average {load_average()} on {os.cpu_count()} CPUs"
        )

        # The warm-up's events count too: flush everything, then compare with what was answered.
        warm_ack = sum(1 for _, real in warm if real)
        with app.app_context():
            for _ in range(200):
                flush_events(app)
                if buffer.pending() == 0:
                    break
        with db.session() as session:
            stored = (
                session.scalar(
                    select(func.count())
                    .select_from(TrackingEvent)
                    .where(TrackingEvent.release_id == release_id)
                )
                or 0
            )
            machine = (
                session.scalar(
                    select(func.count())
                    .select_from(TrackingEvent)
                    .where(
                        TrackingEvent.release_id == release_id, TrackingEvent.is_machine.is_(True)
                    )
                )
                or 0
            )
        expected = acknowledged + warm_ack
        lost = max(0, expected - int(stored))
        if stored > expected:
            # Event ids are unique, so these are requests still in flight when the client
            # stopped counting: answered after the measurement ended, and kept.
            log(f"{stored - expected} more events stored than answered within the measurement")
        log(f"stored {stored} events ({machine} classified as machines)")
        rate = done / elapsed if elapsed else 0.0
        main_line = (
            f"tracking: {rate:.0f} req/s, p99 {p99:.1f} ms, lost {lost} of {expected} events"
        )

        if args.burst:
            # Apple Mail Privacy Protection after a send: every recipient's pixel fetched by
            # Apple's proxies within a minute or so, whether or not anyone reads the mail.
            burst_release, burst_tokens, _ = seed(db, settings, args.burst, slug="burst")
            log(f"burst: {args.burst} pixel fetches within {args.burst_seconds:.0f} s")
            stop.clear()
            thread = threading.Thread(target=flusher, daemon=True)
            thread.start()
            servers = CpuMeter(
                {
                    "postgres": postgres_pids(engine, name),
                    "redis": lambda: [private_redis[0].pid] if private_redis else [],
                }
            )
            servers.start()
            cpu_before, own_before = cpu_seconds(gunicorn.pid), time.process_time()
            # One fetch per delivery, due evenly over the window, open loop (http_load.py).
            stats = load(
                port,
                [f"/t/o/{burst_tokens[i % len(burst_tokens)]}.gif" for i in range(args.burst)],
                connections=args.burst_connections,
                user_agent=APPLE_MPP_AGENT,
                interval=args.burst_seconds / args.burst,
            )
            burst_elapsed = stats.elapsed
            burst_cpu = cpu_seconds(gunicorn.pid) - cpu_before
            flusher_cpu = time.process_time() - own_before
            servers.stop()
            stop.set()
            thread.join()
            backlog = buffer.pending()
            flush_started = time.perf_counter()
            with app.app_context():
                for _ in range(400):
                    flush_events(app)
                    if buffer.pending() == 0:
                        break
            latencies = stats.latencies
            answered = len(latencies)
            burst_p99 = stats.p99_ms()
            burst_stored = stored_for(db, burst_release)
            burst_lost = max(0, stats.acknowledged - burst_stored) + stats.errors
            log(
                f"burst: {answered} answered in {burst_elapsed:.1f} s, statuses {stats.status}, "
                f"errors {stats.errors}, median {latencies[answered // 2] * 1000:.1f} ms; "
                f"CPU per request: web workers {burst_cpu / max(1, answered) * 1000:.2f} ms, "
                f"http_load client {stats.cpu / max(1, answered) * 1000:.2f} ms, "
                f"bench process (flusher) {flusher_cpu / max(1, answered) * 1000:.2f} ms, "
                f"PostgreSQL {servers.used['postgres'] / max(1, answered) * 1000:.2f} ms, "
                f"Redis {servers.used['redis'] / max(1, answered) * 1000:.2f} ms; "
                f"load average {load_average()}; "
                f"{backlog} events still buffered at the end, flushed in "
                f"{time.perf_counter() - flush_started:.1f} s; {burst_stored} stored"
            )
            print(
                f"tracking burst: {answered / burst_elapsed:.0f} req/s, p99 {burst_p99:.1f} ms, "
                f"lost {burst_lost} of {args.burst} events",
                flush=True,
            )
        print(main_line, flush=True)
        return 0
    finally:
        if gunicorn is not None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            try:
                gunicorn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
        buffer.client.delete(QUEUE_KEY, PROCESSING_KEY, LOCK_KEY)
        drop_database(server, name)
        if private_redis is not None:
            private_redis[0].terminate()
            private_redis[0].wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
