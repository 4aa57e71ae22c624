"""``make bench-tracking``: the pixel and click endpoints under a post-send burst.

Creates a throwaway PostgreSQL database (server from DATABASE_URL), starts a private
redis-server on a free loopback port (else uses REDIS_URL, default db 10), migrates the
database and seeds one sent release with ``--recipients`` deliveries and three tracked
links. Starts the app under gunicorn with 2 worker processes on loopback against that
database and Redis, and drives ``/t/o/<token>.gif`` (75%) and ``/t/c/<token>/<link>`` (25%) for
``--seconds`` with ``--concurrency`` keep-alive connections: ``wrk`` (Debian package) when it is
installed, else a small asyncio raw-HTTP/1.1 client in this process. A flusher
drains the Redis buffer into the database every second while the load runs, as Celery beat
would. Afterwards it flushes until the buffer is empty and counts the stored events. It prints,
as its last line:

    tracking: <R> req/s, p99 <L> ms, lost <K> of <T> events

Before that line, with ``--burst`` (default 100,000; 0 skips it), it prints the same figures
for the Apple Mail Privacy Protection pattern: one pixel fetch per delivery of a second
release, arriving evenly within ``--burst-seconds`` (60) over ``--burst-connections`` (64)
keep-alive connections, open loop (latency counted from when each request was due, so a
server that falls behind cannot slow the arrivals down), the flusher running meanwhile:

    tracking burst: <R> req/s, p99 <L> ms, lost <K> of <T> events

Here ``K`` also counts requests that got no answer at all.

``T`` is the number of requests answered 200 (pixel) or 302 (click) for a real token, each of
which must become exactly one stored event; ``K`` is how many did not.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

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
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.acknowledged = 0  # requests that must each become one stored event
        self.errors = 0
        self.status: dict[int, int] = {}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        lname = name.strip().lower()
        if lname == "content-length":
            length = int(value.strip())
        elif lname == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def _client(
    host: str, port: int, requests: list[tuple[str, bool]], stats: Stats, deadline: float
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for path, real in requests:
        if time.monotonic() > deadline:
            break
        payload = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(payload)
            await writer.drain()
            status, close = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        stats.latencies.append(time.perf_counter() - started)
        stats.status[status] = stats.status.get(status, 0) + 1
        if real and status in (200, 302):
            stats.acknowledged += 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


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


async def drive(
    host: str, port: int, requests: list[tuple[str, bool]], concurrency: int, seconds: float
) -> tuple[Stats, float]:
    stats = Stats()
    chunks = [requests[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(host, port, chunk, stats, deadline) for chunk in chunks))
    return stats, time.perf_counter() - started


APPLE_MPP_AGENT = "Mozilla/5.0"  # what Apple's Mail Privacy Protection proxies send


async def _burst_client(
    host: str, port: int, schedule: list[tuple[float, str]], stats: Stats
) -> None:
    """Send each request when it is due (open loop) on one keep-alive connection."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for due, path in schedule:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {APPLE_MPP_AGENT}\r\n"
            "Accept: image/*\r\n\r\n"
        ).encode()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(payload)
            await writer.drain()
            status, close = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        # From when the request was due, not when it went out: a server that falls behind
        # shows as latency here instead of silently slowing the arrivals down.
        stats.latencies.append(time.perf_counter() - due)
        stats.status[status] = stats.status.get(status, 0) + 1
        if status == 200:
            stats.acknowledged += 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def burst(
    host: str, port: int, tokens: list[str], total: int, seconds: float, connections: int
) -> tuple[Stats, float]:
    """``total`` pixel fetches, one per delivery, arriving evenly within ``seconds``."""
    stats = Stats()
    interval = seconds / total
    start = time.perf_counter() + 0.5
    schedules: list[list[tuple[float, str]]] = [[] for _ in range(connections)]
    for i in range(total):
        path = f"/t/o/{tokens[i % len(tokens)]}.gif"
        schedules[i % connections].append((start + i * interval, path))
    await asyncio.gather(*(_burst_client(host, port, sched, stats) for sched in schedules))
    return stats, time.perf_counter() - start


def stored_events(db: Database, release_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(TrackingEvent)
                .where(TrackingEvent.release_id == release_id)
            )
            or 0
        )


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
        help="load generator: wrk (Debian package) when installed, else the asyncio client",
    )
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument(
        "--burst", type=int, default=100_000, help="pixel fetches of the MPP burst (0: none)"
    )
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    parser.add_argument("--burst-connections", type=int, default=64)
    parser.add_argument(
        "--worker-class",
        default="gthread",
        help="gunicorn worker class (gthread keeps connections alive; sync closes each one)",
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
        threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
        log(f"gunicorn: 2 {args.worker_class} workers{threads} on 127.0.0.1:{port}")

        app = create_app(settings, db=db)
        stop = threading.Event()

        def flusher() -> None:  # what Celery beat's tracking.flush does, every second
            with app.app_context():
                while not stop.wait(1.0):
                    flush_events(app)

        # Warm up both workers (imports, connection pools) before measuring.
        warm = plan(tokens, links, 400, seed=1)
        asyncio.run(drive("127.0.0.1", port, warm, 8, 30))
        thread = threading.Thread(target=flusher, daemon=True)
        thread.start()
        cpu_before, own_before = cpu_seconds(gunicorn.pid), time.process_time()
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        if use_wrk:
            done, elapsed, acknowledged, p99 = run_wrk(
                port, tokens, links, args.concurrency, args.seconds
            )
        else:
            requests = plan(tokens, links, args.requests, seed=2)
            stats, elapsed = asyncio.run(
                drive("127.0.0.1", port, requests, args.concurrency, args.seconds)
            )
            latencies = sorted(stats.latencies)
            done, acknowledged = len(latencies), stats.acknowledged
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            log(f"statuses {stats.status}, errors {stats.errors}")
        web_cpu = cpu_seconds(gunicorn.pid) - cpu_before
        own_cpu = time.process_time() - own_before
        stop.set()
        thread.join()
        log(
            f"{'wrk' if use_wrk else 'asyncio client'}: {done} requests in {elapsed:.1f} s; "
            f"CPU per request: web workers {web_cpu / max(1, done) * 1000:.2f} ms, "
            f"bench process (flusher{'' if use_wrk else ' + client'}) "
            f"{own_cpu / max(1, done) * 1000:.2f} ms; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
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
            cpu_before = cpu_seconds(gunicorn.pid)
            stats, burst_elapsed = asyncio.run(
                burst(
                    "127.0.0.1", port, burst_tokens, args.burst, args.burst_seconds,
                    args.burst_connections,
                )
            )  # fmt: skip
            burst_cpu = cpu_seconds(gunicorn.pid) - cpu_before
            stop.set()
            thread.join()
            backlog = buffer.pending()
            flush_started = time.perf_counter()
            with app.app_context():
                for _ in range(400):
                    flush_events(app)
                    if buffer.pending() == 0:
                        break
            latencies = sorted(stats.latencies)
            answered = len(latencies)
            burst_p99 = (
                latencies[min(answered - 1, int(answered * 0.99))] * 1000 if answered else 0.0
            )
            burst_stored = stored_events(db, burst_release)
            burst_lost = max(0, stats.acknowledged - burst_stored) + stats.errors
            log(
                f"burst: {answered} answered in {burst_elapsed:.1f} s, statuses {stats.status}, "
                f"errors {stats.errors}, median {latencies[answered // 2] * 1000:.1f} ms; "
                f"web CPU {burst_cpu / max(1, answered) * 1000:.2f} ms per request; "
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
