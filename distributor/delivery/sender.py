"""One batch of one send: claim rows, render, push them through one SMTP connection, record.

This is the hot path. Per recipient it does a string join (``CompiledRelease.render``), one
pipelined SMTP exchange and one autocommit UPDATE by primary key (the previous message's
acceptance, through libpq directly) that travels while the envelope replies do. No ORM objects, no ``EmailMessage``, no per-row Redis call.
The runner owns its transactions (the claim commit, then one small commit per outcome).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import Database, utcnow
from distributor.delivery.classify import (
    Outcome,
    Stage,
    Verdict,
    classify_connection_lost,
    classify_reply,
    plan_retry,
)
from distributor.delivery.ledger import ClaimedRow, ProgressWriter, claim_batch
from distributor.delivery.models import DeliveryStatus, Send
from distributor.delivery.ratelimit import RateLimiter
from distributor.delivery.smtp_client import (
    SMTPClient,
    SMTPConnectionLost,
    SMTPRefused,
    choose_relay,
)
from distributor.logs import get_logger
from distributor.mail.transport import SMTPConfig
from distributor.releases.models import Release
from distributor.settings import Settings

log = get_logger("distributor.delivery.sender")

_STATUS_CHECK_SECONDS = 1.0  # how often a running batch looks for pause/cancel
_MAX_RECONNECTS = 3
_RATE_PATIENCE_SECONDS = 10.0  # how long a batch waits for rate-limit tokens
_RATE_POLL_SECONDS = 0.25


def worker_name() -> str:
    """A claim owner name: unique per batch, readable in the ledger."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


# -- compiled releases, once per worker process -------------------------------------------------

_compiled: dict[int, tuple[dt.datetime, object]] = {}


def compiled_release(session: Session, release_id: int, settings: Settings) -> object:
    """The release compiled once per process, recompiled when the release changes."""
    from distributor.delivery.rendering import compile_release

    updated_at = session.scalar(select(Release.updated_at).where(Release.id == release_id))
    cached = _compiled.get(release_id)
    if cached is not None and cached[0] == updated_at and updated_at is not None:
        return cached[1]
    compiled = compile_release(session, release_id, settings)
    if len(_compiled) > 8:
        _compiled.clear()
    if updated_at is not None:
        _compiled[release_id] = (updated_at, compiled)
    return compiled


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    unknown: int = 0
    released: int = 0
    is_send_running: bool = True
    outcomes: Counter[str] = field(default_factory=Counter)


class _Batch:
    """The state of one batch while it runs."""

    def __init__(
        self,
        settings: Settings,
        writer: ProgressWriter,
        limiter: RateLimiter,
        send_id: int,
        result: BatchResult,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.limiter = limiter
        self.send_id = send_id
        self.result = result
        self.clock = clock
        # The last accepted message, committed just before the next final dot (or at the end).
        self.pending: tuple[int, str, str] | None = None

    def flush(self) -> bool:
        """Commit the pending acceptance; False when the row was taken from us."""
        if self.pending is None:
            return True
        delivery_id, message_id, response = self.pending
        self.pending = None
        if self.writer.record_accepted(delivery_id, message_id, response, self.clock()):
            self.result.sent += 1
            return True
        return False

    def still_ours(self, row: ClaimedRow) -> bool:
        """The fence before a final dot: committing the previous acceptance proves the claim
        is still ours; without one (first message, or after a refusal) ask the database."""
        if self.pending is not None:
            return self.flush()
        return self.writer.is_claimed(row.id)

    def transient(self, row: ClaimedRow, code: int | None, response: str, verdict: Verdict) -> None:
        now = self.clock()
        s = self.settings
        plan = plan_retry(
            attempts=row.attempts + 1,
            first_attempt_at=row.first_attempt_at or now,
            now=now,
            base_seconds=s.delivery_retry_base_seconds,
            max_seconds=s.delivery_retry_max_seconds,
            lifetime_hours=s.delivery_lifetime_hours,
        )
        next_at = plan.next_attempt_at
        if verdict.is_domain_throttle:
            self.limiter.back_off(row.domain)
            if next_at is not None:
                backoff_end = now + dt.timedelta(seconds=s.delivery_domain_backoff_seconds)
                next_at = max(next_at, backoff_end)
        status = (
            DeliveryStatus.DEFERRED if plan.outcome is Outcome.DEFERRED else DeliveryStatus.FAILED
        )
        self.writer.record(
            row.id, status, code=code, response=response, now=now, next_attempt_at=next_at
        )
        if status is DeliveryStatus.DEFERRED:
            self.result.deferred += 1
        else:
            self.result.failed += 1

    def outcome(self, row: ClaimedRow, stage: Stage, code: int, response: str) -> None:
        """Record a reply that was not an acceptance."""
        verdict = classify_reply(code, response, stage)
        if verdict.outcome is Outcome.DEFERRED:
            self.transient(row, code, response, verdict)
            return
        now = self.clock()
        self.writer.record(
            row.id,
            DeliveryStatus.FAILED,
            code=code,
            response=response,
            now=now,
            is_policy_rejection=verdict.is_policy_rejection,
        )
        self.result.failed += 1
        if verdict.is_suppressing:
            digest = hashlib.sha256(row.email.strip().lower().encode("utf-8")).hexdigest()
            self.writer.suppress(digest, row.email, f"{code} {response}", now)

    def lost(self, row: ClaimedRow, exc: SMTPConnectionLost) -> None:
        verdict = classify_connection_lost(exc.stage)
        if verdict.outcome is Outcome.UNKNOWN:
            self.writer.record(
                row.id,
                DeliveryStatus.UNKNOWN,
                code=None,
                response=f"connection lost after the final dot: {exc.reason}",
                now=self.clock(),
            )
            self.result.unknown += 1
        else:
            self.transient(
                row, None, f"connection lost at {exc.stage.value}: {exc.reason}", verdict
            )


def run_batch(
    db: Database,
    settings: Settings,
    send_id: int,
    *,
    limiter: RateLimiter,
    relays: list[SMTPConfig],
    batch_size: int | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> BatchResult:
    """Claim and deliver one batch of ``send_id``; safe to run any number of times at once."""
    result = BatchResult()
    worker = worker_name()
    session = db.session()
    try:
        send = session.get(Send, send_id)
        if send is None:
            result.is_send_running = False
            return result
        release_id = send.release_id
        compiled = compiled_release(session, release_id, settings)
        session.commit()
        with session.begin():
            rows = claim_batch(
                session.connection(),
                send_id=send_id,
                worker=worker,
                limit=batch_size or settings.delivery_batch_size,
                now=clock(),
            )
    finally:
        session.close()
    if rows is None:
        result.is_send_running = False
        return result
    if not rows:
        return result
    result.claimed = len(rows)
    writer = ProgressWriter(db.engine, worker)
    try:
        writer.touch_send(send_id, clock())
        _deliver(rows, compiled, settings, writer, limiter, relays, send_id, result, clock, worker)
    finally:
        writer.close()
    log.info(
        "delivery.batch",
        send_id=send_id,
        claimed=result.claimed,
        sent=result.sent,
        deferred=result.deferred,
        failed=result.failed,
        unknown=result.unknown,
        released=result.released,
    )
    return result


def _deliver(
    rows: list[ClaimedRow],
    compiled: object,
    settings: Settings,
    writer: ProgressWriter,
    limiter: RateLimiter,
    relays: list[SMTPConfig],
    send_id: int,
    result: BatchResult,
    clock: Callable[[], dt.datetime],
    worker: str,
) -> None:
    from distributor.delivery.rendering import Recipient

    render = compiled.render  # type: ignore[attr-defined]
    batch = _Batch(settings, writer, limiter, send_id, result, clock)

    # Rate limits: one limiter call per round for the whole batch. Rows over a domain's rate
    # wait for its tokens (short sleeps, up to _RATE_PATIENCE_SECONDS) so a big send to one
    # domain runs at that domain's rate; rows of a domain that asked us to slow down go back
    # to the queue until its pause is over.
    state = _Connection(relays)
    throttled: set[str] = set()
    domains_used: set[str] = set()
    last_check = time.monotonic()
    heartbeat_every = max(1.0, settings.delivery_claim_timeout_seconds / 3)
    last_heartbeat = last_check
    patience_until = last_check + _RATE_PATIENCE_SECONDS
    waiting = rows
    stop_status: str | None = None  # set when the batch must stop early
    try:
        while waiting:
            wanted = Counter(r.domain for r in waiting)
            domains_used.update(wanted)
            grant = limiter.acquire(worker, wanted)
            left = dict(grant.granted)
            sendable: list[ClaimedRow] = []
            later: list[ClaimedRow] = []
            paused_domains: dict[float, list[int]] = {}
            for row in waiting:
                if left.get(row.domain, 0) > 0:
                    left[row.domain] -= 1
                    sendable.append(row)
                elif row.domain in grant.backoff_seconds:
                    wait = grant.backoff_seconds[row.domain]
                    paused_domains.setdefault(wait, []).append(row.id)
                else:
                    later.append(row)
            now = clock()
            for wait, ids in paused_domains.items():
                writer.release(
                    ids,
                    status=DeliveryStatus.QUEUED,
                    next_attempt_at=now + dt.timedelta(seconds=wait),
                    now=now,
                )
                result.released += len(ids)
            for index, row in enumerate(sendable):
                tick = time.monotonic()
                if tick - last_check >= _STATUS_CHECK_SECONDS:
                    last_check = tick
                    status = writer.send_status(send_id)
                    if status != "running":
                        stop_status = status or "cancelled"
                        _give_back(writer, sendable[index:], stop_status, clock(), result)
                        break
                if tick - last_heartbeat >= heartbeat_every:
                    last_heartbeat = tick
                    writer.heartbeat(clock())
                if row.domain in throttled:
                    # The domain asked us to slow down during this batch: leave it for later.
                    writer.release(
                        [row.id],
                        status=DeliveryStatus.QUEUED,
                        next_attempt_at=clock()
                        + dt.timedelta(seconds=settings.delivery_domain_backoff_seconds),
                        now=clock(),
                    )
                    result.released += 1
                    continue
                client = state.client()
                if client is None:
                    # No relay reachable: everything left is deferred with backoff.
                    for rest in sendable[index:] + later:
                        batch.transient(
                            rest, None, "no SMTP relay reachable", Verdict(Outcome.DEFERRED)
                        )
                    later = []
                    stop_status = "running"
                    break
                if not _send_one(row, client, render, Recipient, batch, throttled, state):
                    stop_status = "running"  # our claim was recovered: stop touching rows
                    break
            if stop_status is not None:
                if stop_status != "running" and later:
                    _give_back(writer, later, stop_status, clock(), result)
                break
            waiting = later
            if waiting:
                if time.monotonic() >= patience_until:
                    now = clock()
                    writer.release(
                        [r.id for r in waiting],
                        status=DeliveryStatus.QUEUED,
                        next_attempt_at=now + dt.timedelta(seconds=1),
                        now=now,
                    )
                    result.released += len(waiting)
                    break
                time.sleep(_RATE_POLL_SECONDS)
    finally:
        state.close()
        batch.flush()
        limiter.release(worker, sorted(domains_used))
    if stop_status not in (None, "running"):
        result.is_send_running = False


class _Connection:
    """The batch's SMTP connection, reconnected a few times if it breaks."""

    def __init__(self, relays: list[SMTPConfig]) -> None:
        self.relays = relays
        self.current: SMTPClient | None = None
        self.reconnects = 0

    def client(self) -> SMTPClient | None:
        if self.current is not None and self.current.is_connected:
            return self.current
        if self.current is not None:
            self.reconnects += 1
        self.current = _connect(self.relays, self.reconnects)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.quit()


def _send_one(
    row: ClaimedRow,
    client: SMTPClient,
    render: Callable[[Any], tuple[str, str, bytes]],
    recipient_type: Any,
    batch: _Batch,
    throttled: set[str],
    state: _Connection,
) -> bool:
    """One message; False when the claim turned out to be someone else's."""
    try:
        envelope_from, message_id, data = render(
            recipient_type(
                row.id,
                row.journalist_id,
                row.email,
                row.name,
                row.verp_token,
                row.matched_beats,
                row.is_tracking_allowed,
            )
        )
    except Exception as exc:  # a bad row must not sink the batch
        log.exception("delivery.render_failed", delivery_id=row.id)
        batch.writer.record(
            row.id,
            DeliveryStatus.FAILED,
            code=None,
            response=f"could not build the message: {exc}",
            now=batch.clock(),
        )
        batch.result.failed += 1
        return True
    try:
        client.write_envelope(envelope_from, row.email)
        # The previous acceptance commits while this envelope's replies travel
        # (RFC 2920 pipelining): before any final dot, every earlier outcome is stored.
        if not batch.still_ours(row):
            with contextlib.suppress(OSError):
                client.read_envelope()
            client.close()
            return False
        refusal = client.read_envelope()
        if refusal is not None:
            stage, reply = refusal
            batch.outcome(row, stage, reply.code, reply.text)
            if classify_reply(reply.code, reply.text, stage).is_domain_throttle:
                throttled.add(row.domain)
            return True
        reply = client.send_body(data)
    except SMTPConnectionLost as exc:
        batch.lost(row, exc)
        client.close()
        return True
    if reply.is_positive:
        batch.pending = (row.id, message_id, reply.text)
        state.reconnects = 0
    else:
        batch.outcome(row, Stage.DOT, reply.code, reply.text)
        if classify_reply(reply.code, reply.text, Stage.DOT).is_domain_throttle:
            throttled.add(row.domain)
    return True


def _connect(relays: list[SMTPConfig], reconnects: int) -> SMTPClient | None:
    if reconnects > _MAX_RECONNECTS:
        return None
    for _ in range(max(2, len(relays))):
        client = SMTPClient(choose_relay(relays))
        try:
            client.connect()
            return client
        except (SMTPConnectionLost, SMTPRefused) as exc:
            log.warning("delivery.connect_failed", relay=client.config.host, error=str(exc))
    return None


def _give_back(
    writer: ProgressWriter,
    rows: list[ClaimedRow],
    send_status: str | None,
    now: dt.datetime,
    result: BatchResult,
) -> None:
    """The send was paused or cancelled mid-batch: return the rows not sent yet."""
    status = DeliveryStatus.CANCELLED if send_status == "cancelled" else DeliveryStatus.QUEUED
    writer.release([r.id for r in rows], status=status, next_attempt_at=None, now=now)
    result.released += len(rows)
