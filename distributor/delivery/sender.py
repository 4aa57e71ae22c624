"""One batch of one send: claim rows, render, push them through a few SMTP connections, record.

This is the hot path. Per recipient it does a string join (``CompiledRelease.message_for``), one
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
from typing import cast

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from distributor.audience.models import SuppressionReason
from distributor.db import Database, utcnow
from distributor.delivery.ledger import ClaimedRow, claim_batch
from distributor.delivery.models import DeliveryStatus, Send
from distributor.delivery.progress import ProgressWriter
from distributor.delivery.pump import CLAIM_LOST, IDLE, Pump, reply_of
from distributor.delivery.ratelimit import Grant, RateLimiter
from distributor.delivery.relaystate import Allowance, RelayState, relay_key, relay_state_for
from distributor.delivery.rendering import CompiledRelease, compile_release
from distributor.delivery.retry import plan_retry
from distributor.delivery.smtp_client import SMTPConnectionLost, choose_relay
from distributor.logs import get_logger
from distributor.mail.outcomes import (
    Outcome,
    RelayTrouble,
    Reply,
    Stage,
    Subject,
    Verdict,
    classify_reply,
    repeated_deferral,
    repeated_refusal,
    smtputf8_not_offered,
)
from distributor.mail.transport import SMTPConfig
from distributor.releases.models import Release
from distributor.settings import Settings

log = get_logger("distributor.delivery.sender")

# Where this process's next claim of a send starts looking for fresh rows
# (``ledger.claim_batch``'s ``after``), by database and send. A hint only: a process that
# starts afresh, or a wrong hint, costs one longer walk of the queue index, never a row.
_CLAIM_AFTER: dict[tuple[str, int], int] = {}
_CLAIM_AFTER_KEPT = 64

_RATE_PATIENCE_SECONDS = 10.0  # how long a batch waits for rate-limit tokens
_RATE_POLL_SECONDS = 0.25
# A batch that lost the database keeps what it knows and retries this long before giving up.
_SALVAGE_PATIENCE_SECONDS = 900.0
_SALVAGE_MAX_PAUSE_SECONDS = 10.0
_RATE_LIMITER_DOWN_RETRY_SECONDS = 5.0

NEVER_HANDED_OVER = "not sent yet: never handed to the SMTP server; queued again ({why})"
# A reply about the relay, not the recipient: the row goes back without an attempt.
RELAY_REFUSED = "{reply} [relay {relay}: about the relay, not the recipient; queued again{wait}]"
# Replies that slow or pause the relay for every worker.
SLOWING = frozenset({RelayTrouble.CONNECTIONS, RelayTrouble.RATE, RelayTrouble.SESSION})
_GOOD_REPORT_SECONDS = 1.0  # a degraded relay hears of good replies at most this often
_LEASE_RENEW_SECONDS = 10.0
IN_DOUBT_NOTE = "in doubt: the final dot was written and no reply was read ({why})"
LATE_NOTE = "accepted by the server, recorded late ({why})"


def worker_name() -> str:
    """A claim owner name: unique per batch, readable in the ledger."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


# -- compiled releases, once per worker process -------------------------------------------------

_compiled: dict[int, tuple[dt.datetime, CompiledRelease]] = {}


def compiled_release(session: Session, release_id: int, settings: Settings) -> CompiledRelease:
    """The release compiled once per process, recompiled when the release changes."""
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
    put_back: int = 0
    is_send_running: bool = True
    commits: int = 0  # statements that committed acceptances (several rows each)
    salvaged: bool = False  # the batch lost the database or Redis and settled afterwards
    retry_after: float = 0.0  # the relay asked us to wait: try the send again after this
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
        relay_state: RelayState | None = None,
        allowances: dict[str, Allowance] | None = None,
        lease_id: str = "",
    ) -> None:
        self.settings = settings
        self.relay_state = relay_state
        self.allowances = allowances or {}
        self.lease_id = lease_id
        self.started = time.monotonic()
        self.last_good = 0.0
        self.last_renew = self.started
        self.writer = writer
        self.limiter = limiter
        self.send_id = send_id
        self.result = result
        self.clock = clock
        self.stop_reason: str | None = None  # the send paused itself, and why
        # 250s we hold but could not record under our claim (recovered, or database lost).
        self.held_accepted: list[tuple[ClaimedRow, str, str]] = []
        # The same content or policy refusal for recipients in a row: (its key, how many).
        self.same_refusals: tuple[str | None, int] = (None, 0)

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
        status = DeliveryStatus.FAILED if plan.is_expired else DeliveryStatus.DEFERRED
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
        if ours and status is DeliveryStatus.DEFERRED:
            self.result.deferred += 1
        elif ours:
            self.result.failed += 1
        return ours

    def outcome(
        self,
        row: ClaimedRow,
        reply: Reply,
        verdict: Verdict | None = None,
        *,
        relay: str = "",
        wait: float = 0.0,
    ) -> bool:
        """Record a reply that was not an acceptance."""
        verdict = verdict or classify_reply(reply)
        if verdict.stops_the_send:
            # The same answer waits for every recipient and none of them is at fault
            # (RFC 5321 4.1.1.3): pause the send, say why, charge nobody.
            self.pause(reply)
            return (
                self.writer.put_back(
                    [row.id],
                    status=DeliveryStatus.QUEUED,
                    next_attempt_at=None,
                    note=NEVER_HANDED_OVER.format(
                        why=f"the send paused itself: {reply.describe()}"
                    ),
                )
                == 1
            )
        if verdict.outcome is Outcome.DEFERRED and verdict.is_relay_trouble:
            return self.put_back_for_relay([row], reply, relay=relay, wait=wait) == 1
        if verdict.outcome is Outcome.DEFERRED:
            return self.transient(row, reply, verdict)
        if verdict.outcome is Outcome.IN_DOUBT:
            ours = self.writer.record(
                row.id, DeliveryStatus.IN_DOUBT, code=None, response=reply.describe(2000)
            )
            if ours:
                self.result.in_doubt += 1
            return ours
        ours = self.writer.record(
            row.id,
            DeliveryStatus.FAILED,
            code=reply.code,
            response=reply.describe(2000),
            is_policy_rejection=verdict.is_policy_rejection,
        )
        if ours:
            self.result.failed += 1
        if verdict.is_suppressing:
            self.writer.suppress(row.email, SuppressionReason.HARD_BOUNCE, reply.describe(2000))
        return ours

    def count_refusal(self, reply: Reply | None) -> bool:
        """Count a refusal (``reply``; None for an acceptance, which ends any run) in the run
        of the same refusal for recipients in a row; the limit is
        ``DELIVERY_PAUSE_AFTER_SAME_REFUSALS``.

        The same permanent content or policy refusal (``outcomes.repeated_refusal``) is about
        the message or us: the send pauses itself. The same transient refusal at RCPT
        (``outcomes.repeated_deferral``) is the relay's trouble: True, and the caller pauses
        the relay. Anything else between them starts the count again."""
        permanent = repeated_refusal(reply) if reply is not None else None
        key = permanent or (repeated_deferral(reply) if reply is not None else None)
        last, count = self.same_refusals
        count = count + 1 if key is not None and key == last else (1 if key else 0)
        self.same_refusals = (key, count)
        limit = self.settings.delivery_pause_after_same_refusals
        if key is None or limit <= 0 or count < limit or reply is None:
            return False
        if permanent is None:
            self.same_refusals = (None, 0)
            return True
        self.pause(
            reply,
            f"The same refusal came for {count} recipients in a row, so it is about the "
            f"message or about us, not them: {reply.describe()}",
        )
        return False

    def lost(self, row: ClaimedRow, exc: SMTPConnectionLost, relay: str = "") -> bool:
        """The connection broke: in doubt after the final dot (RFC 1047), else never handed
        over and queued again at once, with no attempt charged."""
        if exc.stage is Stage.DOT:
            why = f"connection lost: {exc.reason}"
            return self.outcome(row, Reply(Stage.DOT, 0, IN_DOUBT_NOTE.format(why=why)))
        reply = Reply(exc.stage, 0, f"connection lost: {exc.reason}")
        return self.put_back_for_relay([row], reply, relay=relay) == 1

    def put_back_for_relay(
        self, rows: list[ClaimedRow], reply: Reply, *, relay: str, wait: float = 0.0
    ) -> int:
        """A reply about the relay: the rows go back to the queue with that reply and no
        attempt charged, due when the relay's pause ends. Rows past their lifetime fail."""
        if not rows:
            return 0
        now = self.clock()
        lifetime = dt.timedelta(hours=self.settings.delivery_lifetime_hours)
        expired = [r for r in rows if r.first_attempt_at and now - r.first_attempt_at > lifetime]
        for row in expired:
            response = (
                f"{reply.describe(1500)} (still refused after "
                f"{self.settings.delivery_lifetime_hours} h: given up)"
            )
            if self.writer.record(
                row.id,
                DeliveryStatus.FAILED,
                code=reply.code or None,
                response=response,
                count_attempt=False,
            ):
                self.result.failed += 1
        back = [r.id for r in rows if r not in expired]
        note = RELAY_REFUSED.format(
            reply=reply.describe(1500),
            relay=relay or "?",
            wait=f", paused {wait:.0f} s" if wait >= 1 else "",
        )
        put_back = self.writer.put_back(
            back,
            status=DeliveryStatus.QUEUED,
            next_attempt_at=now + dt.timedelta(seconds=wait) if wait > 0 else None,
            note=note,
            code=reply.code or None,
        )
        self.result.put_back += put_back
        if wait > 0:
            self.result.retry_after = max(self.result.retry_after, wait)
        return put_back + len(expired)

    def relay_trouble(self, relay: str, trouble: RelayTrouble, reply: Reply) -> float:
        """Tell every worker that the relay refused us; how long it is paused now."""
        if self.relay_state is None:
            return 0.0
        allowance = self.allowances.get(relay)
        elapsed = max(0.001, time.monotonic() - self.started)
        try:
            pause = self.relay_state.trouble(
                relay,
                trouble,
                reply.describe(),
                self.result.sent / elapsed,
                allowance.connections if allowance else 1,
            )
        except Exception as exc:
            log.warning("delivery.relay_state_failed", error=str(exc))
            pause = self.settings.smtp_relay_backoff_seconds
        log.warning(
            "delivery.relay_trouble",
            relay=relay,
            trouble=trouble.value,
            reply=reply.describe(),
            pause=round(pause, 1),
        )
        return pause

    def relay_good(self, relay: str) -> None:
        """Good replies from a relay running below its limits: one step back up (at most one a
        second from this batch; the shared state spaces the steps itself)."""
        allowance = self.allowances.get(relay)
        now = time.monotonic()
        if (
            self.relay_state is None
            or allowance is None
            or not allowance.is_degraded
            or now - self.last_good < _GOOD_REPORT_SECONDS
        ):
            return
        self.last_good = now
        with contextlib.suppress(Exception):
            self.relay_state.good(relay)

    def renew_leases(self) -> None:
        now = time.monotonic()
        if self.relay_state is None or now - self.last_renew < _LEASE_RENEW_SECONDS:
            return
        self.last_renew = now
        for key, allowance in self.allowances.items():
            with contextlib.suppress(Exception):
                self.relay_state.renew(self.lease_id, key, allowance.connections)

    def not_carried(self, row: ClaimedRow, relay: str, missing: str) -> bool:
        """The relay lacks SMTPUTF8 for this row's internationalised address: failed with
        the outcome authority's reason, no attempt charged, nothing handed over."""
        text, verdict = smtputf8_not_offered(relay, missing)
        assert verdict.outcome is Outcome.FAILED
        ours = self.writer.record(
            row.id, DeliveryStatus.FAILED, code=None, response=text, count_attempt=False
        )
        if ours:
            self.result.failed += 1
        return ours

    def unbuildable(self, row: ClaimedRow, exc: Exception) -> bool:
        ours = self.writer.record(
            row.id, DeliveryStatus.FAILED, code=None, response=f"could not build the message: {exc}"
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

    def pause(self, reply: Reply, reason: str = "") -> None:
        if not reason and reply.stage is Stage.TLS:
            reason = f"Mail cannot go to the relay safely: {reply.describe()}"
        if not reason and classify_reply(reply).subject is Subject.MESSAGE:
            reason = (
                f"Every recipient would get the same refusal of this message: {reply.describe()}"
            )
        reason = reason or f"The mail relay refused us, not the recipients: {reply.describe()}"
        if self.stop_reason is None:
            self.stop_reason = reason
            self.writer.pause_send(self.send_id, reason)
            log.warning("delivery.send_paused_itself", send_id=self.send_id, reason=reason)

    def put_back_on_stop(self, rows: list[ClaimedRow], send_status: str) -> None:
        """The send was paused or cancelled mid-batch: put back the rows not sent yet."""
        if not rows:
            return
        status = DeliveryStatus.CANCELLED if send_status == "cancelled" else DeliveryStatus.QUEUED
        # When the send paused itself, each row says why it was not sent.
        why = f"the send paused itself: {self.stop_reason}" if self.stop_reason else ""
        self.result.put_back += self.writer.put_back(
            [r.id for r in rows],
            status=status,
            next_attempt_at=None,
            note=NEVER_HANDED_OVER.format(why=why)
            if why and status is DeliveryStatus.QUEUED
            else "",
        )

    def put_back(self, rows: list[ClaimedRow], wait_seconds: float, why: str = "") -> None:
        """Put rows back in the queue unsent, due again after ``wait_seconds``."""
        if not rows:
            return
        now = self.clock()
        self.result.put_back += self.writer.put_back(
            [r.id for r in rows],
            status=DeliveryStatus.QUEUED,
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
    relay_state: RelayState | None = None,
) -> BatchResult:
    """Claim and deliver one batch of ``send_id``; safe to run any number of times at once."""
    result = BatchResult()
    worker = worker_name()
    state = relay_state or relay_state_for(settings)
    # The batch opens as many connections as the relays allow now (shared by every worker);
    # none allowed: claim nothing, come back when the pause ends.
    allowances, lane_relays, wait = _open_relays(
        state, worker, relays, max(1, settings.delivery_connections_per_batch)
    )
    try:
        if not lane_relays:
            result.retry_after = max(0.5, wait)
            log.info("delivery.relay_wait", send_id=send_id, seconds=round(result.retry_after, 1))
            return result
        _run_claimed(
            db,
            settings,
            send_id,
            result,
            worker,
            limiter,
            lane_relays,
            allowances,
            state,
            batch_size,
            clock,
        )
    finally:
        for key, allowance in allowances.items():
            try:
                state.end_lease(worker, key, allowance.connections)
            except Exception as exc:
                log.warning("delivery.relay_lease_end_failed", error=str(exc))
    return result


def _open_relays(
    state: RelayState, worker: str, relays: list[SMTPConfig], wanted: int
) -> tuple[dict[str, Allowance], list[SMTPConfig], float]:
    """Connections for this batch from each relay (weighted order), and the shortest wait
    when none would give any."""
    order: list[SMTPConfig] = []
    left = list(relays)
    while left:
        pick = choose_relay(left)
        order.append(pick)
        left.remove(pick)
    allowances: dict[str, Allowance] = {}
    lane_relays: list[SMTPConfig] = []
    waits: list[float] = []
    for relay in order:
        if len(lane_relays) >= wanted:
            break
        key = relay_key(relay)
        allowance = state.acquire(worker, key, wanted - len(lane_relays))
        allowances[key] = allowance
        lane_relays += [relay] * allowance.connections
        waits.append(allowance.pause_seconds or 0.5)
    return allowances, lane_relays, min(waits, default=0.5)


def _run_claimed(
    db: Database,
    settings: Settings,
    send_id: int,
    result: BatchResult,
    worker: str,
    limiter: RateLimiter,
    lane_relays: list[SMTPConfig],
    allowances: dict[str, Allowance],
    state: RelayState,
    batch_size: int | None,
    clock: Callable[[], dt.datetime],
) -> None:
    lanes = len(lane_relays)
    session = db.session()
    try:
        send = session.get(Send, send_id)
        if send is None:
            result.is_send_running = False
            return
        release_id = send.release_id
        compiled = compiled_release(session, release_id, settings)
        session.commit()
        hint = (str(db.engine.url), send_id)
        with session.begin():
            claim = claim_batch(
                session.connection(),
                send_id=send_id,
                worker=worker,
                limit=batch_size or settings.delivery_batch_size,
                lanes=lanes,
                after=_CLAIM_AFTER.get(hint, 0),
            )
    finally:
        session.close()
    if claim is not None:
        if len(_CLAIM_AFTER) >= _CLAIM_AFTER_KEPT and hint not in _CLAIM_AFTER:
            _CLAIM_AFTER.clear()
        _CLAIM_AFTER[hint] = claim.after
    if claim is None:
        result.is_send_running = False
        return
    if not claim.rows:
        return
    result.claimed = len(claim.rows)
    batch = Batch(
        settings,
        ProgressWriter(db.engine, claim.id),
        limiter,
        send_id,
        result,
        clock,
        relay_state=state,
        allowances=allowances,
        lease_id=worker,
    )
    try:
        batch.writer.touch_send(send_id)
        _deliver(claim.rows, compiled, batch, lane_relays, lanes, worker, db.engine, claim.id)
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
        put_back=result.put_back,
        acceptance_commits=result.commits,
        salvaged=result.salvaged,
        connections=lanes,
    )


def _deliver(
    rows: list[ClaimedRow],
    compiled: CompiledRelease,
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
    # Each lane is pinned to the relay whose connection it holds (``_open_relays``).
    pump = Pump(batch, compiled, relays, lane_count)
    domains_used: set[str] = set()
    patience_until = time.monotonic() + _RATE_PATIENCE_SECONDS
    waiting = rows
    is_clean = False
    try:
        while waiting:
            wanted = Counter(r.domain for r in waiting)
            domains_used.update(wanted)
            grant = _domain_grant(batch, worker, wanted, waiting)
            if grant is None:
                waiting = []  # put back: the rate limiter is out of reach
                break
            sendable, later, waiting = _take_granted(batch, pump, waiting, grant)
            stop = pump.run(sendable)
            if sendable and batch.result.sent:
                _report_good_relays(batch, pump)
            if pump.stopped:
                waiting = _put_back_for_stopped_relays(batch, pump, waiting)
            if stop is not None:
                if stop != CLAIM_LOST:
                    batch.put_back_on_stop(later, stop)
                    batch.result.is_send_running = False
                waiting = []
                break
            if waiting and not _wait_for_next_round(batch, pump, waiting, patience_until):
                waiting = []
                break
        pump.close()
        is_clean = not pump.claim_lost
    except Exception as exc:
        log.warning("delivery.batch_interrupted", error=f"{type(exc).__name__}: {exc}")
        batch.result.salvaged = True
        _salvage(batch, pump, waiting, engine, claim_id, exc)
        is_clean = True
    finally:
        _end_domain_leases(limiter, worker, domains_used)
        batch.result.commits = pump.commits
    _settle_held(batch, engine, claim_id, end_claim=is_clean)


def _domain_grant(
    batch: Batch, worker: str, wanted: Counter[str], waiting: list[ClaimedRow]
) -> Grant | None:
    """What the domains' rate limits grant this round; None when the limiter is out of
    reach (the rows went back to the queue for a few seconds)."""
    try:
        return batch.limiter.acquire(worker, wanted)
    except Exception as exc:
        log.warning("delivery.rate_limiter_unreachable", error=str(exc))
        batch.put_back(
            waiting,
            _RATE_LIMITER_DOWN_RETRY_SECONDS,
            why=f"rate limiter unreachable: {type(exc).__name__}",
        )
        return None


def _take_granted(
    batch: Batch, pump: Pump, waiting: list[ClaimedRow], grant: Grant
) -> tuple[list[ClaimedRow], list[ClaimedRow], list[ClaimedRow]]:
    """Split the waiting rows: (sendable this round, held back by a domain's rate, every
    row still waiting). Rows of a slowed-down domain go back to the queue until its pause
    ends; once a lane's row must wait, the lane's later rows wait with it."""
    lane_count = len(pump.lanes)
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
        batch.put_back(paused, wait)
    sendable, over = _within_relay_rates(batch, pump, sendable)
    still_waiting = sorted([*later, *over], key=lambda r: r.id) if over else later
    return sendable, later, still_waiting


def _report_good_relays(batch: Batch, pump: Pump) -> None:
    """The relays that accepted mail this round and did not refuse us may speed up."""
    for key in {relay_key(lane.relay) for lane in pump.lanes} - set(pump.stopped):
        batch.relay_good(key)


def _put_back_for_stopped_relays(
    batch: Batch, pump: Pump, waiting: list[ClaimedRow]
) -> list[ClaimedRow]:
    """A relay refused us: its lanes' rows wait for it (the shared state decides how many
    connections and what rate the next batches get). The rows of the other relays stay."""
    lane_count = len(pump.lanes)
    stay: list[ClaimedRow] = []
    back: dict[str, list[ClaimedRow]] = {}
    for row in waiting:
        key = relay_key(pump.lanes[row.lane % lane_count].relay)
        if key in pump.stopped:
            back.setdefault(key, []).append(row)
        else:
            stay.append(row)
    for key, rows_back in back.items():
        reply, wait = pump.stopped[key]
        batch.put_back_for_relay(rows_back, reply, relay=key, wait=wait)
    return stay


def _wait_for_next_round(
    batch: Batch, pump: Pump, waiting: list[ClaimedRow], patience_until: float
) -> bool:
    """Rows wait for rate-limit tokens: sleep a moment, keeping the claim alive. False when
    the batch stops waiting (out of patience: the rows went back; or the claim was lost)."""
    if time.monotonic() >= patience_until:
        batch.put_back(waiting, 1.0)
        return False
    pump.beat()
    if pump.claim_lost:
        pump.abandon()
        return False
    time.sleep(_RATE_POLL_SECONDS)
    return True


def _end_domain_leases(limiter: RateLimiter, worker: str, domains: set[str]) -> None:
    try:
        limiter.end_lease(worker, sorted(domains))
    except Exception as exc:
        log.warning("delivery.rate_limiter_lease_end_failed", error=str(exc))


def _within_relay_rates(
    batch: Batch, pump: Pump, rows: list[ClaimedRow]
) -> tuple[list[ClaimedRow], list[ClaimedRow]]:
    """Rows the relays' shared rates allow now, and the rest (a prefix of each lane's rows
    is kept, so lanes stay in id order). No call at all while no relay is rate-limited."""
    limited = {k for k, a in batch.allowances.items() if a.rate_per_second > 0}
    if not rows or not limited or batch.relay_state is None:
        return rows, []
    n = len(pump.lanes)
    wanted = Counter(relay_key(pump.lanes[r.lane % n].relay) for r in rows)
    granted: dict[str, int] = {}
    for key, count in wanted.items():
        if key not in limited:
            granted[key] = count
            continue
        try:
            granted[key] = batch.relay_state.take(key, count)
        except Exception as exc:
            log.warning("delivery.relay_state_failed", error=str(exc))
            granted[key] = count
    keep: list[ClaimedRow] = []
    over: list[ClaimedRow] = []
    blocked: set[int] = set()
    for row in rows:
        lane = row.lane % n
        key = relay_key(pump.lanes[lane].relay)
        if lane not in blocked and granted[key] > 0:
            granted[key] -= 1
            keep.append(row)
        else:
            blocked.add(lane)
            over.append(row)
    return keep, over


def _salvage(
    batch: Batch,
    pump: Pump,
    waiting: list[ClaimedRow],
    engine: Engine,
    claim_id: int,
    exc: Exception,
) -> None:
    """Keep what the batch knows after a failure: read the replies to final dots already
    written, stop sending, and put back every row never handed over (recorded by
    ``_settle_held`` once the database answers)."""
    why = f"{type(exc).__name__}"
    held = batch.held_accepted
    if pump.committing is not None:
        held.extend((row, m, t) for _, row, m, t in pump.committing)
        pump.committing = None
    held.extend((row, m, t) for _, row, m, t in pump.accepted)
    pump.accepted = []
    doubt, refused = _read_dots_out(pump, held, why)
    unsent = sorted([*pump.unsent_rows(), *waiting], key=lambda r: r.id)
    for lane in pump.lanes:
        if lane.client is not None:
            lane.client.close()
            lane.client = None

    def write(writer: ProgressWriter) -> None:
        batch.writer = writer
        for row, reply in refused:
            if not batch.outcome(row, reply):
                writer.settle_late(row.id, DeliveryStatus.FAILED, response=reply.describe(2000))
        for row, note in doubt:
            if writer.record(row.id, DeliveryStatus.IN_DOUBT, code=None, response=note):
                batch.result.in_doubt += 1
        note = NEVER_HANDED_OVER.format(why=f"batch interrupted: {why}")
        put_back = writer.put_back(
            [r.id for r in unsent], status=DeliveryStatus.QUEUED, next_attempt_at=None, note=note
        )
        batch.result.put_back += put_back
        if put_back < len(unsent):
            # Recovery got there first and made a lane's first row in doubt: it never left.
            for row in unsent:
                writer.settle_late(row.id, DeliveryStatus.QUEUED, response=note)

    _with_database(batch, engine, claim_id, write)


def _read_dots_out(
    pump: Pump, held: list[tuple[ClaimedRow, str, str]], why: str
) -> tuple[list[tuple[ClaimedRow, str]], list[tuple[ClaimedRow, Reply]]]:
    """Read the reply to every final dot already written and close its connection: a 250
    joins ``held``; returned are the rows left in doubt (no reply) and the refused ones."""
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
    return doubt, refused


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
                    DeliveryStatus.SENT,
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
                # Not a writer: it stands in so that the next ``write`` fails and retries.
                writer = cast(ProgressWriter, _BrokenWriter())
            batch.writer = writer


class _BrokenWriter:
    """Stands in while the database refuses connections: every use fails, so we retry."""

    def __getattr__(self, name: str) -> object:
        raise ConnectionError("database unreachable")

    def close(self) -> None:
        pass
