"""One batch of one send: claim rows, render, push them through a few SMTP connections, record.

This is the hot path. Per recipient it does a string join (``CompiledRelease.render``), one
pipelined SMTP exchange and its share of one group-committed UPDATE (acceptances of all lanes,
through libpq directly) that travels while the next envelope replies do. No ORM objects, no
``EmailMessage``, no per-row Redis call. The event loop is ``pump.Pump``; this module decides
what each answer does to its row (``distributor.mail.outcomes`` says what it means) and keeps
what the batch knows when the database or Redis goes away.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from distributor.audience.models import SuppressionReason
from distributor.db import Database, utcnow
from distributor.delivery.ledger import ClaimedRow, claim_batch
from distributor.delivery.models import DeliveryStatus, Send
from distributor.delivery.progress import ProgressWriter
from distributor.delivery.pump import CLAIM_LOST, IDLE, Pump, reply_of
from distributor.delivery.ratelimit import RateLimiter
from distributor.delivery.retry import plan_retry
from distributor.delivery.smtp_client import SMTPConnectionLost
from distributor.logs import get_logger
from distributor.mail.outcomes import (
    Outcome,
    Reply,
    Stage,
    Verdict,
    classify_reply,
    smtputf8_not_offered,
)
from distributor.mail.transport import SMTPConfig
from distributor.releases.models import Release
from distributor.settings import Settings

log = get_logger("distributor.delivery.sender")

D = DeliveryStatus
_RATE_PATIENCE_SECONDS = 10.0  # how long a batch waits for rate-limit tokens
_RATE_POLL_SECONDS = 0.25
# A batch that lost the database keeps what it knows and retries this long before giving up.
_SALVAGE_PATIENCE_SECONDS = 900.0
_SALVAGE_MAX_PAUSE_SECONDS = 10.0
_RATE_LIMITER_DOWN_RETRY_SECONDS = 5.0

NEVER_HANDED_OVER = "not sent yet: never handed to the SMTP server; queued again ({why})"
IN_DOUBT_NOTE = "in doubt: the final dot was written and no reply was read ({why})"
LATE_NOTE = "accepted by the server, recorded late ({why})"


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
    in_doubt: int = 0
    released: int = 0
    is_send_running: bool = True
    commits: int = 0  # statements that committed acceptances (several rows each)
    salvaged: bool = False  # the batch lost the database or Redis and settled afterwards
    outcomes: Counter[str] = field(default_factory=Counter)


class Batch:
    """What each answer does to its row. Every write is fenced by the claim and returns
    whether the row was still ours."""

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
        self.stop_reason: str | None = None  # the send paused itself, and why
        # 250s we hold but could not record under our claim (recovered, or database lost).
        self.held_accepted: list[tuple[ClaimedRow, str, str]] = []

    def transient(self, row: ClaimedRow, reply: Reply, verdict: Verdict, note: str = "") -> bool:
        """Try again later; relay trouble costs the recipient no attempt."""
        now = self.clock()
        s = self.settings
        is_charged = not verdict.is_relay_trouble
        plan = plan_retry(
            attempts=max(1, row.attempts + (1 if is_charged else 0)),
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
        status = D.FAILED if plan.is_expired else D.DEFERRED
        response = reply.describe(2000) + (f" ({note})" if note else "")
        if plan.is_expired:
            response += f" (still refused after {s.delivery_lifetime_hours} h: given up)"
        ours = self.writer.record(
            row.id,
            status,
            code=reply.code or None,
            response=response,
            next_attempt_at=next_at,
            count_attempt=is_charged,
        )
        if ours and status is D.DEFERRED:
            self.result.deferred += 1
        elif ours:
            self.result.failed += 1
        return ours

    def outcome(self, row: ClaimedRow, reply: Reply, verdict: Verdict | None = None) -> bool:
        """Record a reply that was not an acceptance."""
        verdict = verdict or classify_reply(reply)
        if verdict.stops_the_send:
            # The same answer waits for every recipient and none of them is at fault
            # (RFC 5321 4.1.1.3): pause the send, say why, charge nobody.
            self.pause(reply)
            return (
                self.writer.release(
                    [row.id],
                    status=D.QUEUED,
                    next_attempt_at=None,
                    note=NEVER_HANDED_OVER.format(
                        why=f"the send paused itself: {reply.describe()}"
                    ),
                )
                == 1
            )
        if verdict.outcome is Outcome.DEFERRED:
            return self.transient(row, reply, verdict)
        if verdict.outcome is Outcome.IN_DOUBT:
            ours = self.writer.record(row.id, D.IN_DOUBT, code=None, response=reply.describe(2000))
            if ours:
                self.result.in_doubt += 1
            return ours
        ours = self.writer.record(
            row.id,
            D.FAILED,
            code=reply.code,
            response=reply.describe(2000),
            is_policy_rejection=verdict.is_policy_rejection,
        )
        if ours:
            self.result.failed += 1
        if verdict.is_suppressing:
            self.writer.suppress(row.email, SuppressionReason.HARD_BOUNCE, reply.describe(2000))
        return ours

    def lost(self, row: ClaimedRow, exc: SMTPConnectionLost) -> bool:
        """The connection broke: in doubt after the final dot (RFC 1047), else never handed
        over and deferred without an attempt charged."""
        if exc.stage is Stage.DOT:
            why = f"connection lost: {exc.reason}"
            return self.outcome(row, Reply(Stage.DOT, 0, IN_DOUBT_NOTE.format(why=why)))
        reply = Reply(exc.stage, 0, f"connection lost: {exc.reason}")
        return self.transient(
            row, reply, classify_reply(reply), note="never handed over, safe to send"
        )

    def not_carried(self, row: ClaimedRow, relay: str, missing: str) -> bool:
        """The relay lacks SMTPUTF8 for this row's internationalised address: failed with
        the outcome authority's reason, no attempt charged, nothing handed over."""
        text, verdict = smtputf8_not_offered(relay, missing)
        assert verdict.outcome is Outcome.FAILED
        ours = self.writer.record(row.id, D.FAILED, code=None, response=text, count_attempt=False)
        if ours:
            self.result.failed += 1
        return ours

    def unbuildable(self, row: ClaimedRow, exc: Exception) -> bool:
        ours = self.writer.record(
            row.id, D.FAILED, code=None, response=f"could not build the message: {exc}"
        )
        if ours:
            self.result.failed += 1
        return ours

    def pause_if_refused(self, refusal: Reply | None) -> bool:
        """A session refusal the relay will repeat for everyone (RFC 5321 4.1.1.3: before
        any recipient): pause the send with the reason. True when it did."""
        if refusal is None or not classify_reply(refusal).stops_the_send:
            return False
        self.pause(refusal)
        return True

    def no_relay(self, rows: list[ClaimedRow], refusal: Reply | None) -> bool:
        """No session with any relay for now: defer the lane's rows (relay trouble: no
        attempt charged)."""
        reply = refusal or Reply(Stage.CONNECT, 0, "no SMTP relay reachable")
        verdict = classify_reply(reply)
        return all([self.transient(row, reply, verdict, note="never handed over") for row in rows])

    def pause(self, reply: Reply) -> None:
        reason = f"The mail relay refused us, not the recipients: {reply.describe()}"
        if self.stop_reason is None:
            self.stop_reason = reason
            self.writer.pause_send(self.send_id, reason)
            log.warning("delivery.send_paused_itself", send_id=self.send_id, reason=reason)

    def give_back(self, rows: list[ClaimedRow], send_status: str) -> None:
        """The send was paused or cancelled mid-batch: return the rows not sent yet."""
        if not rows:
            return
        status = D.CANCELLED if send_status == "cancelled" else D.QUEUED
        self.result.released += self.writer.release(
            [r.id for r in rows], status=status, next_attempt_at=None
        )

    def release(self, rows: list[ClaimedRow], wait_seconds: float, why: str = "") -> None:
        """Give rows back to the queue unsent, due again after ``wait_seconds``."""
        if not rows:
            return
        now = self.clock()
        self.result.released += self.writer.release(
            [r.id for r in rows],
            status=D.QUEUED,
            next_attempt_at=now + dt.timedelta(seconds=wait_seconds),
            note=NEVER_HANDED_OVER.format(why=why) if why else "",
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
    lanes = max(1, settings.delivery_connections_per_batch)
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
            claim = claim_batch(
                session.connection(),
                send_id=send_id,
                worker=worker,
                limit=batch_size or settings.delivery_batch_size,
                lanes=lanes,
            )
    finally:
        session.close()
    if claim is None:
        result.is_send_running = False
        return result
    if not claim.rows:
        return result
    result.claimed = len(claim.rows)
    batch = Batch(settings, ProgressWriter(db.engine, claim.id), limiter, send_id, result, clock)
    try:
        batch.writer.touch_send(send_id)
        _deliver(claim.rows, compiled, batch, relays, lanes, worker, db.engine, claim.id)
    finally:
        batch.writer.close()
    if batch.stop_reason is not None:
        result.is_send_running = False
    log.info(
        "delivery.batch",
        send_id=send_id,
        claimed=result.claimed,
        sent=result.sent,
        deferred=result.deferred,
        failed=result.failed,
        in_doubt=result.in_doubt,
        released=result.released,
        acceptance_commits=result.commits,
        salvaged=result.salvaged,
    )
    return result


def _deliver(
    rows: list[ClaimedRow],
    compiled: object,
    batch: Batch,
    relays: list[SMTPConfig],
    lane_count: int,
    worker: str,
    engine: Engine,
    claim_id: int,
) -> None:
    """Send a claimed batch in rounds: each round takes what the rate limits grant now.

    Rows over a domain's rate wait for its tokens (short sleeps, up to _RATE_PATIENCE_SECONDS)
    so a big send to one domain runs at that domain's rate; rows of a domain that asked us to
    slow down go back to the queue until its pause is over. A lane sends its rows in id order
    across rounds (recovery relies on it): once a row of a lane must wait, the lane's later
    rows wait with it.
    """
    limiter = batch.limiter
    pump = Pump(batch, compiled, relays, lane_count)
    domains_used: set[str] = set()
    patience_until = time.monotonic() + _RATE_PATIENCE_SECONDS
    waiting = rows
    is_clean = False
    try:
        while waiting:
            wanted = Counter(r.domain for r in waiting)
            domains_used.update(wanted)
            try:
                grant = limiter.acquire(worker, wanted)
            except Exception as exc:
                log.warning("delivery.rate_limiter_unreachable", error=str(exc))
                batch.release(
                    waiting,
                    _RATE_LIMITER_DOWN_RETRY_SECONDS,
                    why=f"rate limiter unreachable: {type(exc).__name__}",
                )
                waiting = []
                break
            left = dict(grant.granted)
            sendable: list[ClaimedRow] = []
            later: list[ClaimedRow] = []
            paused_domains: dict[float, list[ClaimedRow]] = {}
            blocked_lanes: set[int] = set()
            for row in waiting:
                lane = row.lane % lane_count
                if row.domain in grant.backoff_seconds:
                    paused_domains.setdefault(grant.backoff_seconds[row.domain], []).append(row)
                elif lane not in blocked_lanes and left.get(row.domain, 0) > 0:
                    left[row.domain] -= 1
                    sendable.append(row)
                else:
                    blocked_lanes.add(lane)
                    later.append(row)
            for wait, paused in paused_domains.items():
                batch.release(paused, wait)
            waiting = later
            stop = pump.run(sendable)
            if stop is not None:
                if stop != CLAIM_LOST:
                    batch.give_back(later, stop)
                    batch.result.is_send_running = False
                waiting = []
                break
            if waiting:
                if time.monotonic() >= patience_until:
                    batch.release(waiting, 1.0)
                    waiting = []
                    break
                pump.beat()
                if pump.claim_lost:
                    pump.abandon()
                    waiting = []
                    break
                time.sleep(_RATE_POLL_SECONDS)
        pump.close()
        is_clean = not pump.claim_lost
    except Exception as exc:
        log.warning("delivery.batch_interrupted", error=f"{type(exc).__name__}: {exc}")
        batch.result.salvaged = True
        _salvage(batch, pump, waiting, engine, claim_id, exc)
        is_clean = True
    finally:
        try:
            limiter.release(worker, sorted(domains_used))
        except Exception as exc:
            log.warning("delivery.rate_limiter_release_failed", error=str(exc))
        batch.result.commits = pump.commits
    _settle_held(batch, engine, claim_id, end_claim=is_clean)


def _salvage(
    batch: Batch,
    pump: Pump,
    waiting: list[ClaimedRow],
    engine: Engine,
    claim_id: int,
    exc: Exception,
) -> None:
    """Keep what the batch knows after a failure: read the replies to final dots already
    written, stop sending, and give back every row never handed over (recorded by
    ``_settle_held`` once the database answers)."""
    why = f"{type(exc).__name__}"
    held = batch.held_accepted
    if pump.committing is not None:
        held.extend((row, m, t) for _, row, m, t in pump.committing)
        pump.committing = None
    held.extend((row, m, t) for _, row, m, t in pump.accepted)
    pump.accepted = []
    doubt: list[tuple[ClaimedRow, str]] = []
    refused: list[tuple[ClaimedRow, Reply]] = []
    for lane, row in pump.dots_out():
        reply = reply_of(lane)
        message_id = lane.message[0] if lane.message else ""
        if reply is None:
            doubt.append((row, IN_DOUBT_NOTE.format(why=f"batch interrupted: {why}")))
        elif reply.is_positive:
            held.append((row, message_id, reply.describe()))
        else:
            refused.append((row, reply))
        if lane.client is not None:
            lane.client.close()
        lane.phase, lane.row, lane.message = IDLE, None, None
    unsent = sorted([*pump.unsent_rows(), *waiting], key=lambda r: r.id)
    for lane in pump.lanes:
        if lane.client is not None:
            lane.client.close()
            lane.client = None

    def write(writer: ProgressWriter) -> None:
        batch.writer = writer
        for row, reply in refused:
            if not batch.outcome(row, reply):
                writer.settle_late(row.id, D.FAILED, response=reply.describe(2000))
        for row, note in doubt:
            if writer.record(row.id, D.IN_DOUBT, code=None, response=note):
                batch.result.in_doubt += 1
        note = NEVER_HANDED_OVER.format(why=f"batch interrupted: {why}")
        released = writer.release(
            [r.id for r in unsent], status=D.QUEUED, next_attempt_at=None, note=note
        )
        batch.result.released += released
        if released < len(unsent):
            # Recovery got there first and made a lane's first row in doubt: it never left.
            for row in unsent:
                writer.settle_late(row.id, D.QUEUED, response=note)

    _with_database(batch, engine, claim_id, write)


def _settle_held(batch: Batch, engine: Engine, claim_id: int, *, end_claim: bool) -> None:
    """Record the 250s we hold (as sent, noting they were late), then end the claim."""
    held, batch.held_accepted = batch.held_accepted, []

    def write(writer: ProgressWriter) -> None:
        batch.writer = writer
        if held:
            stamp = utcnow().strftime("%H:%M:%S UTC")
            confirmed = writer.record_accepted_many(
                [(row.id, m, f"{t} [{LATE_NOTE.format(why='at ' + stamp)}]") for row, m, t in held]
            )
            batch.result.sent += len(confirmed)
            for row, message_id, text in held:
                if row.id in confirmed:
                    continue
                note = LATE_NOTE.format(why="after its worker's claim was recovered")
                if writer.settle_late(
                    row.id,
                    D.SENT,
                    response=f"{text} [{note}]",
                    message_id=message_id,
                ):
                    batch.result.sent += 1
        if end_claim and not writer.end_claim(batch.send_id):
            log.warning("delivery.claim_left_open", claim_id=claim_id, send_id=batch.send_id)

    if held or end_claim:
        _with_database(batch, engine, claim_id, write)


def _with_database(
    batch: Batch,
    engine: Engine,
    claim_id: int,
    write: Callable[[ProgressWriter], None],
) -> None:
    """Run ``write`` until the database takes it, reconnecting with backoff: what we know
    is never dropped because the database is away for a while."""
    deadline = time.monotonic() + _SALVAGE_PATIENCE_SECONDS
    pause = 0.25
    writer = batch.writer
    while True:
        try:
            write(writer)
            return
        except Exception as exc:
            if time.monotonic() >= deadline:
                log.error("delivery.settle_gave_up", claim_id=claim_id, error=str(exc))
                raise
            log.warning("delivery.settle_retry", claim_id=claim_id, error=str(exc), pause=pause)
            with contextlib.suppress(Exception):  # the connection is gone anyway
                writer.close()
            time.sleep(pause)
            pause = min(_SALVAGE_MAX_PAUSE_SECONDS, pause * 2)
            try:
                writer = ProgressWriter(engine, claim_id)
            except Exception as again:
                log.warning("delivery.settle_reconnect_failed", error=str(again))
                writer = _BrokenWriter()  # type: ignore[assignment]
            batch.writer = writer


class _BrokenWriter:
    """Stands in while the database refuses connections: every use fails, so we retry."""

    def __getattr__(self, name: str) -> object:
        raise ConnectionError("database unreachable")

    def close(self) -> None:
        pass
