"""One batch of one send: claim rows, render, push them through one SMTP connection, record.

This is the hot path. Per recipient it does a string join (``CompiledRelease.render``), one
pipelined SMTP exchange and one tiny autocommit UPDATE (the in-flight marker) that travels
while the envelope replies do. No ORM objects, no ``EmailMessage``, no per-row Redis call.
The runner owns its transactions (claim commit, markers, one bulk commit), like a task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

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
        self.accepted: list[tuple[int, str]] = []

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

    # Rate limits: one call for the whole batch; what is not granted goes back to the queue.
    wanted = Counter(r.domain for r in rows)
    grant = limiter.acquire(worker, wanted)
    sendable: list[ClaimedRow] = []
    held: dict[float, list[int]] = {}
    left = dict(grant.granted)
    for row in rows:
        if left.get(row.domain, 0) > 0:
            left[row.domain] -= 1
            sendable.append(row)
        else:
            wait = grant.backoff_seconds.get(row.domain, 1.0)
            held.setdefault(wait, []).append(row.id)
    now = clock()
    for wait, ids in held.items():
        writer.release(
            ids,
            status=DeliveryStatus.QUEUED,
            next_attempt_at=now + dt.timedelta(seconds=wait),
            now=now,
        )
        result.released += len(ids)

    client: SMTPClient | None = None
    reconnects = 0
    throttled: set[str] = set()
    last_check = time.monotonic()
    heartbeat_every = max(1.0, settings.delivery_claim_timeout_seconds / 3)
    last_heartbeat = last_check
    try:
        for index, row in enumerate(sendable):
            tick = time.monotonic()
            if tick - last_check >= _STATUS_CHECK_SECONDS:
                last_check = tick
                status = writer.send_status(send_id)
                if status != "running":
                    _give_back(writer, sendable[index:], status, clock(), result)
                    result.is_send_running = False
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
            if client is None or not client.is_connected:
                if client is not None:
                    reconnects += 1
                client = _connect(relays, reconnects)
                if client is None:
                    # No relay reachable: everything left is deferred with backoff.
                    for rest in sendable[index:]:
                        batch.transient(
                            rest, None, "no SMTP relay reachable", Verdict(Outcome.DEFERRED)
                        )
                    break
            try:
                envelope_from, message_id, data = render(
                    Recipient(
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
                writer.record(
                    row.id,
                    DeliveryStatus.FAILED,
                    code=None,
                    response=f"could not build the message: {exc}",
                    now=clock(),
                )
                result.failed += 1
                continue
            try:
                client.write_envelope(envelope_from, row.email)
                # The marker commits while the envelope replies travel (RFC 2920 pipelining).
                if not writer.mark_handed(row.id, message_id, clock()):
                    # Our claim was recovered by someone else: stop touching these rows.
                    client.read_envelope()
                    client.close()
                    break
                refusal = client.read_envelope()
                if refusal is not None:
                    stage, reply = refusal
                    batch.outcome(row, stage, reply.code, reply.text)
                    if classify_reply(reply.code, reply.text, stage).is_domain_throttle:
                        throttled.add(row.domain)
                    continue
                reply = client.send_body(data)
            except SMTPConnectionLost as exc:
                batch.lost(row, exc)
                if client is not None:
                    client.close()
                continue
            if reply.is_positive:
                batch.accepted.append((row.id, reply.text[:500]))
                reconnects = 0
            else:
                batch.outcome(row, Stage.DOT, reply.code, reply.text)
                if classify_reply(reply.code, reply.text, Stage.DOT).is_domain_throttle:
                    throttled.add(row.domain)
    finally:
        if client is not None:
            client.quit()
        result.sent += writer.record_sent(batch.accepted, clock())
        limiter.release(worker, list(wanted))


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
    """The send was paused or cancelled mid-batch: return the rows not handed over yet."""
    status = DeliveryStatus.CANCELLED if send_status == "cancelled" else DeliveryStatus.QUEUED
    writer.release([r.id for r in rows], status=status, next_attempt_at=None, now=now)
    result.released += len(rows)
