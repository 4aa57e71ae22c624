"""What operators watch: Prometheus metrics computed from the database and Redis at scrape time.

Every figure is read from where the truth already is (delivery rows, sends, import jobs, the
bounce pipeline's rows, the tracking buffer in Redis) when Prometheus scrapes, not counted in
process memory. So it does not matter which gunicorn worker answers a scrape, and Celery
prefork children need no exporter of their own (prometheus_client's multiprocess mode would
need a shared directory, cleaned at every restart, for the same result). A scrape's output
is cached for ``CACHE_SECONDS`` (in Redis when configured, shared by every web worker), so
several scrapers or a short scrape interval cost one set of queries per interval.

Who may scrape is decided by ``may_scrape``: a bearer token (``METRICS_TOKEN``) when one is
set, otherwise a direct request from loopback only.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from distributor.audience.models import ImportJob, ImportStatus
from distributor.db import utcnow
from distributor.delivery.ledger import FINAL_STATUSES
from distributor.delivery.models import (
    Delivery,
    DeliveryClaim,
    DeliveryStatus,
    Send,
    SendStatus,
)
from distributor.logs import get_logger
from distributor.reports.health import dashboard
from distributor.settings import Settings
from distributor.tracking.buffer import (
    DEAD_LETTER_KEY,
    PROCESSING_KEY,
    QUEUE_KEY,
    RawEvent,
    RedisEventBuffer,
)

log = get_logger("distributor.metrics")

CACHE_SECONDS = 10.0
CACHE_KEY = "distributor:metrics:exposition"
# Finished sends stay in the per-status message figures this long after they finish.
RECENT = dt.timedelta(hours=24)
RATE_WINDOW = dt.timedelta(seconds=60)
BOUNCE_WINDOW_DAYS = 7
PREFIX = "distributor_"


# -- access ------------------------------------------------------------------------------------


def may_scrape(
    settings: Settings, *, remote_addr: str | None, authorization: str, is_forwarded: bool
) -> bool:
    """Whether a request may read the metrics.

    With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` is accepted, from
    anywhere (a reverse proxy on the same host makes every request look local, so loopback
    alone proves nothing then). Without it, only direct requests from loopback: a request
    that names a ``Forwarded`` or ``X-Forwarded-For`` client came through a proxy and is
    refused.
    """
    if settings.metrics_token:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), settings.metrics_token.encode()
        )
    if is_forwarded:
        return False
    try:
        return ipaddress.ip_address((remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


# -- collecting --------------------------------------------------------------------------------


@dataclass
class Gauge:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, value: float, *labels: str) -> None:
        self.samples.append((labels, float(value)))


def reply_class(code: int | None) -> str:
    """RFC 5321 reply class of an SMTP code: 2xx, 4xx, 5xx, or none (no reply recorded)."""
    if code is None or not 200 <= code < 600:
        return "none"
    return f"{code // 100}xx"


def collect(
    session: Session, settings: Settings, buffer: RedisEventBuffer | None, now: dt.datetime
) -> list[Gauge]:
    """Every figure, read now from the database and Redis."""
    gauges: list[Gauge] = []
    gauges += _sends(session)
    gauges += _messages(session, now)
    gauges += _running_sends(session, settings, now)
    gauges += _claims_and_backlog(session, settings, now)
    gauges += _bounces(session, now)
    gauges += _imports(session)
    gauges += _tracking(buffer, now)
    return gauges


def _sends(session: Session) -> list[Gauge]:
    sends = Gauge("sends", "Sends by status.", ("status",))
    counts = dict(session.execute(select(Send.status, func.count()).group_by(Send.status)).all())
    for status in SendStatus:
        sends.add(counts.get(status, 0), status.value)
    return [sends]


def _recent_sends(now: dt.datetime) -> Any:
    return select(Send.id).where(
        (Send.status != SendStatus.FINISHED) | (Send.finished_at >= now - RECENT)
    )


def _messages(session: Session, now: dt.datetime) -> list[Gauge]:
    messages = Gauge(
        "messages",
        "Messages of sends not finished or finished in the last 24 hours, by delivery "
        "status and SMTP reply class of the last attempt (2xx, 4xx, 5xx, none).",
        ("status", "reply_class"),
    )
    code_class = case(
        (Delivery.smtp_code.between(200, 299), "2xx"),
        (Delivery.smtp_code.between(400, 499), "4xx"),
        (Delivery.smtp_code.between(500, 599), "5xx"),
        else_="none",
    )
    rows = session.execute(
        select(Delivery.status, code_class, func.count())
        .where(Delivery.send_id.in_(_recent_sends(now)))
        .group_by(Delivery.status, code_class)
    ).all()
    seen = set()
    for status, klass, count in rows:
        value = DeliveryStatus(status).value
        seen.add((value, str(klass)))
        messages.add(count, value, str(klass))
    for status in DeliveryStatus:  # every status present, so a panel never shows "no data"
        if not any(s == status.value for s, _ in seen):
            messages.add(0, status.value, "none")
    return [messages]


def _running_sends(session: Session, settings: Settings, now: dt.datetime) -> list[Gauge]:
    recipients = Gauge("send_recipients", "Recipients of a running or paused send.", ("send_id",))
    done = Gauge(
        "send_done_messages",
        "Messages of a running or paused send with a final outcome (sent, failed, unknown, "
        "cancelled).",
        ("send_id",),
    )
    rate = Gauge(
        "send_rate_messages_per_second",
        "Messages of a running send accepted by the relay in the last 60 seconds, per second.",
        ("send_id",),
    )
    last_claim = Gauge(
        "send_last_claim_age_seconds",
        "Seconds since a batch last claimed rows of a running send.",
        ("send_id",),
    )
    live = Gauge(
        "send_live_batches",
        "Batches working on a running send: claims whose heartbeat is fresher than two thirds "
        "of DELIVERY_CLAIM_TIMEOUT_SECONDS.",
        ("send_id",),
    )
    sends = session.execute(
        select(Send.id, Send.recipient_count, Send.last_claim_at).where(
            Send.status.in_([SendStatus.RUNNING, SendStatus.PAUSED])
        )
    ).all()
    fresh_since = now - dt.timedelta(seconds=settings.delivery_claim_timeout_seconds * 2 / 3)
    for send_id, recipient_count, last_claim_at in sends:
        label = str(send_id)
        recipients.add(recipient_count, label)
        done.add(
            session.scalar(
                select(func.count()).where(
                    Delivery.send_id == send_id, Delivery.status.in_(FINAL_STATUSES)
                )
            )
            or 0,
            label,
        )
        recent = (
            session.scalar(
                select(func.count()).where(
                    Delivery.send_id == send_id,
                    Delivery.status == DeliveryStatus.SENT,
                    Delivery.sent_at >= now - RATE_WINDOW,
                )
            )
            or 0
        )
        rate.add(recent / RATE_WINDOW.total_seconds(), label)
        if last_claim_at is not None:
            last_claim.add(max(0.0, (now - last_claim_at).total_seconds()), label)
        live.add(
            session.scalar(
                select(func.count(DeliveryClaim.id)).where(
                    DeliveryClaim.send_id == send_id,
                    DeliveryClaim.recovered_at.is_(None),
                    DeliveryClaim.ended_at.is_(None),
                    DeliveryClaim.heartbeat_at >= fresh_since,
                )
            )
            or 0,
            label,
        )
    return [recipients, done, rate, last_claim, live]


def _claims_and_backlog(session: Session, settings: Settings, now: dt.datetime) -> list[Gauge]:
    unfinished = select(Send.id).where(Send.status != SendStatus.FINISHED)
    sending = session.scalar(
        select(func.count()).where(
            Delivery.send_id.in_(unfinished), Delivery.status == DeliveryStatus.SENDING
        )
    )
    # Each batch's claim carries its heartbeat (the database's clock, moved every few seconds).
    oldest = session.scalar(
        select(func.min(DeliveryClaim.heartbeat_at)).where(
            DeliveryClaim.recovered_at.is_(None), DeliveryClaim.ended_at.is_(None)
        )
    )
    claimed = Gauge("claimed_messages", "Messages claimed by a batch (status sending).")
    claimed.add(sending or 0)
    age = Gauge(
        "oldest_claim_age_seconds",
        "Seconds since the stalest claim in sending was made or refreshed by its batch's "
        "heartbeat; past DELIVERY_CLAIM_TIMEOUT_SECONDS the sweep treats its worker as dead.",
    )
    age.add(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    timeout = Gauge("claim_timeout_seconds", "DELIVERY_CLAIM_TIMEOUT_SECONDS, for alert rules.")
    timeout.add(settings.delivery_claim_timeout_seconds)
    deferred_count, due = session.execute(
        select(
            func.count(),
            func.count(case((Delivery.next_attempt_at <= now, 1))),
        ).where(Delivery.send_id.in_(unfinished), Delivery.status == DeliveryStatus.DEFERRED)
    ).one()
    deferred = Gauge("deferred_messages", "Messages waiting to be retried after a 4xx reply.")
    deferred.add(deferred_count or 0)
    overdue = Gauge("deferred_due_messages", "Deferred messages whose retry time has come.")
    overdue.add(due or 0)
    return [claimed, age, timeout, deferred, overdue]


def _bounces(session: Session, now: dt.datetime) -> list[Gauge]:
    board = dashboard(session, days=BOUNCE_WINDOW_DAYS, now=now)
    window = f"{BOUNCE_WINDOW_DAYS}d"
    sent = Gauge(
        "sent_messages_window", "Messages sent in the window (reports' figure).", ("window",)
    )
    sent.add(board.sent, window)
    bounce = Gauge(
        "bounce_rate",
        "Hard bounces per message sent in the window, as the sending-health report counts "
        "them (warn at 0.05, limit 0.10).",
        ("window",),
    )
    bounce.add(board.bounce_rate, window)
    complaint = Gauge(
        "complaint_rate",
        "Spam complaints per message sent in the window (Gmail/Yahoo: keep under 0.003, "
        "aim for 0.001).",
        ("window",),
    )
    complaint.add(board.complaint_rate, window)
    return [sent, bounce, complaint]


def _imports(session: Session) -> list[Gauge]:
    jobs = Gauge("import_jobs", "CSV import jobs by status.", ("status",))
    counts = dict(
        session.execute(select(ImportJob.status, func.count()).group_by(ImportJob.status)).all()
    )
    for status in ImportStatus:
        jobs.add(counts.get(status, 0), status.value)
    running = Gauge(
        "import_running_rows",
        "Rows of running imports: the file's total and those processed so far.",
        ("job_id", "kind"),
    )
    for job_id, total, processed in session.execute(
        select(ImportJob.id, ImportJob.total_rows, ImportJob.processed_rows).where(
            ImportJob.status == ImportStatus.RUNNING
        )
    ):
        running.add(total, str(job_id), "total")
        running.add(processed, str(job_id), "processed")
    return [jobs, running]


def _tracking(buffer: RedisEventBuffer | None, now: dt.datetime) -> list[Gauge]:
    length = Gauge(
        "tracking_buffer_events",
        "Tracking events answered but not yet written to the database (0 without Redis: "
        "events are written through).",
    )
    lag = Gauge(
        "tracking_flush_lag_seconds",
        "Age of the oldest tracking event waiting in the buffer (0 when it is empty).",
    )
    refused = Gauge("tracking_refused_events", "Events the database refused, set aside.")
    if buffer is None:
        for gauge in (length, lag, refused):
            gauge.add(0)
        return [length, lag, refused]
    client = buffer.client
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE_KEY)
    pipe.llen(PROCESSING_KEY)
    pipe.lindex(PROCESSING_KEY, 0)
    pipe.lindex(QUEUE_KEY, 0)
    pipe.llen(DEAD_LETTER_KEY)
    queued, processing, oldest_processing, oldest_queued, dead = pipe.execute()
    length.add(int(queued) + int(processing))
    oldest = oldest_processing or oldest_queued
    event = RawEvent.loads(oldest) if oldest else None
    lag.add(max(0.0, now.timestamp() - event.occurred_at) if event is not None else 0.0)
    refused.add(int(dead))
    return [length, lag, refused]


# -- exposition ----------------------------------------------------------------------------------


class _Snapshot(Collector):
    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterator[Metric]:
        for gauge in self.gauges:
            family = GaugeMetricFamily(PREFIX + gauge.name, gauge.help, labels=gauge.labels)
            for labels, value in gauge.samples:
                family.add_metric(list(labels), value)
            yield family


def exposition(gauges: Iterable[Gauge]) -> bytes:
    """The Prometheus text format of ``gauges``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(gauges))
    return generate_latest(registry)


class MetricsCache:
    """The last exposition, shared through Redis when there is one, else per process."""

    def __init__(self, client: Any | None) -> None:
        self.client = client
        self._local: tuple[float, bytes] | None = None

    def get(self) -> bytes | None:
        if self.client is not None:
            try:
                cached = self.client.get(CACHE_KEY)
            except Exception:  # Redis down: compute, the figures say what is wrong
                cached = None
            return bytes(cached) if cached else None
        if self._local is not None and time.monotonic() - self._local[0] < CACHE_SECONDS:
            return self._local[1]
        return None

    def put(self, body: bytes) -> None:
        if self.client is not None:
            try:
                self.client.set(CACHE_KEY, body, px=int(CACHE_SECONDS * 1000))
            except Exception:
                log.warning("metrics cache unavailable", exc_info=True)
            return
        self._local = (time.monotonic(), body)


def render(
    session: Session,
    settings: Settings,
    buffer: RedisEventBuffer | None,
    cache: MetricsCache | None = None,
) -> bytes:
    """The metrics page: from the cache when fresh, else collected now."""
    if cache is not None and (cached := cache.get()) is not None:
        return cached
    started = time.perf_counter()
    gauges = collect(session, settings, buffer, utcnow())
    took = Gauge("metrics_collect_seconds", "How long collecting these figures took.")
    took.add(time.perf_counter() - started)
    gauges.append(took)
    body = exposition(gauges)
    if cache is not None:
        cache.put(body)
    log.debug("metrics collected", seconds=round(time.perf_counter() - started, 3))
    return body
