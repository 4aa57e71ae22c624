"""One batch of one send: claim rows, render, push them through one SMTP connection, record.

This is the hot path. Per recipient it does a string join (``CompiledRelease.render``), one
pipelined SMTP exchange and one autocommit UPDATE by primary key (the previous message's
acceptance, through libpq directly) that travels while the envelope replies do. No ORM objects, no ``EmailMessage``, no per-row Redis call.
The runner owns its transactions (the claim commit, then one small commit per outcome).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from select import select as wait_readable
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
    commits: int = 0  # statements that committed acceptances (several rows each)
    outcomes: Counter[str] = field(default_factory=Counter)


class _Batch:
    """Outcome bookkeeping of one batch. Every write is fenced by the claim and returns
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

    def transient(self, row: ClaimedRow, code: int | None, response: str, verdict: Verdict) -> bool:
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
        ours = self.writer.record(
            row.id, status, code=code, response=response, now=now, next_attempt_at=next_at
        )
        if ours and status is DeliveryStatus.DEFERRED:
            self.result.deferred += 1
        elif ours:
            self.result.failed += 1
        return ours

    def outcome(self, row: ClaimedRow, stage: Stage, code: int, response: str) -> bool:
        """Record a reply that was not an acceptance."""
        verdict = classify_reply(code, response, stage)
        if verdict.outcome is Outcome.DEFERRED:
            return self.transient(row, code, response, verdict)
        now = self.clock()
        ours = self.writer.record(
            row.id,
            DeliveryStatus.FAILED,
            code=code,
            response=response,
            now=now,
            is_policy_rejection=verdict.is_policy_rejection,
        )
        if ours:
            self.result.failed += 1
        if verdict.is_suppressing:
            digest = hashlib.sha256(row.email.strip().lower().encode("utf-8")).hexdigest()
            self.writer.suppress(digest, row.email, f"{code} {response}", now)
        return ours

    def lost(self, row: ClaimedRow, exc: SMTPConnectionLost) -> bool:
        verdict = classify_connection_lost(exc.stage)
        if verdict.outcome is Outcome.UNKNOWN:
            ours = self.writer.record(
                row.id,
                DeliveryStatus.UNKNOWN,
                code=None,
                response=f"connection lost after the final dot: {exc.reason}",
                now=self.clock(),
            )
            if ours:
                self.result.unknown += 1
            return ours
        return self.transient(
            row, None, f"connection lost at {exc.stage.value}: {exc.reason}", verdict
        )

    def give_back(self, rows: list[ClaimedRow], send_status: str) -> None:
        """The send was paused or cancelled mid-batch: return the rows not sent yet."""
        if not rows:
            return
        status = DeliveryStatus.CANCELLED if send_status == "cancelled" else DeliveryStatus.QUEUED
        self.writer.release(
            [r.id for r in rows], status=status, next_attempt_at=None, now=self.clock()
        )
        self.result.released += len(rows)

    def release(self, rows: list[ClaimedRow], wait_seconds: float) -> None:
        """Give rows back to the queue unsent, due again after ``wait_seconds``."""
        if not rows:
            return
        now = self.clock()
        self.writer.release(
            [r.id for r in rows],
            status=DeliveryStatus.QUEUED,
            next_attempt_at=now + dt.timedelta(seconds=wait_seconds),
            now=now,
        )
        self.result.released += len(rows)


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
            rows = claim_batch(
                session.connection(),
                send_id=send_id,
                worker=worker,
                limit=batch_size or settings.delivery_batch_size,
                now=clock(),
                lanes=lanes,
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
        batch = _Batch(settings, writer, limiter, send_id, result, clock)
        _deliver(rows, compiled, batch, relays, lanes, worker)
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
        acceptance_commits=result.commits,
    )
    return result


def _deliver(
    rows: list[ClaimedRow],
    compiled: object,
    batch: _Batch,
    relays: list[SMTPConfig],
    lane_count: int,
    worker: str,
) -> None:
    """Send a claimed batch in rounds: each round takes what the rate limits grant now.

    Rows over a domain's rate wait for its tokens (short sleeps, up to _RATE_PATIENCE_SECONDS)
    so a big send to one domain runs at that domain's rate; rows of a domain that asked us to
    slow down go back to the queue until its pause is over. A lane sends its rows in id order
    across rounds (recovery relies on it): once a row of a lane must wait, the lane's later
    rows wait with it.
    """
    limiter = batch.limiter
    pump = _Pump(batch, compiled, relays, lane_count)
    domains_used: set[str] = set()
    patience_until = time.monotonic() + _RATE_PATIENCE_SECONDS
    waiting = rows
    try:
        while waiting:
            wanted = Counter(r.domain for r in waiting)
            domains_used.update(wanted)
            grant = limiter.acquire(worker, wanted)
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
            stop = pump.run(sendable)
            if stop is not None:
                if stop != _CLAIM_LOST:
                    batch.give_back(later, stop)
                    batch.result.is_send_running = False
                break
            waiting = later
            if waiting:
                if time.monotonic() >= patience_until:
                    batch.release(waiting, 1.0)
                    break
                time.sleep(_RATE_POLL_SECONDS)
    finally:
        pump.close()
        limiter.release(worker, sorted(domains_used))
        batch.result.commits = pump.commits


# How long acceptances may wait for company before their commit goes out anyway.
_COMMIT_GATHER_SECONDS = 0.001

_CLAIM_LOST = "claim lost"  # our rows were recovered by the sweep: stop touching them

# Lane phases
_IDLE, _ENVELOPE, _READY, _DOT = range(4)


class _Lane:
    """One SMTP connection of a batch and the rows it carries, in id order."""

    __slots__ = ("client", "fenced", "message", "phase", "queue", "reconnects", "row")

    def __init__(self) -> None:
        self.queue: deque[ClaimedRow] = deque()
        self.client: SMTPClient | None = None
        self.reconnects = 0
        self.phase = _IDLE
        self.row: ClaimedRow | None = None
        self.message: tuple[str, bytes] | None = None  # (Message-ID, message bytes)
        # Every earlier outcome of this lane is committed and the claim was ours then: the
        # lane may send its next final dot.
        self.fenced = False


class _Pump:
    """Drives the lanes of a batch together, one event loop, one database connection.

    A lane's message goes: envelope written (MAIL, RCPT, DATA pipelined) -> replies read ->
    body and final dot written once the lane is fenced -> reply read. Acceptances of all lanes
    are committed together in one statement per turn of the loop, while the next envelopes'
    replies travel; a lane's next final dot waits for that commit.
    """

    def __init__(
        self, batch: _Batch, compiled: object, relays: list[SMTPConfig], lane_count: int
    ) -> None:
        from distributor.delivery.rendering import Recipient

        self.batch = batch
        self.render: Callable[[Any], tuple[str, str, bytes]] = compiled.render  # type: ignore[attr-defined]
        self.recipient = Recipient
        # Built by mime.MessageTemplate: no line starts with a dot, no stuffing scan needed.
        self.is_dot_safe = bool(getattr(compiled, "is_dot_safe", False))
        self.relays = relays
        self.lanes = [_Lane() for _ in range(lane_count)]
        self.accepted: list[tuple[_Lane, ClaimedRow, str, str]] = []
        # Acceptances whose commit is in flight (at most one statement at a time).
        self.committing: list[tuple[_Lane, ClaimedRow, str, str]] | None = None
        self.first_accepted_at = 0.0
        # Rows worth a statement of their own without waiting (see _time_to_commit).
        self.commit_rows = max(1, lane_count // 4)
        self.throttled: set[str] = set()
        self.timeout = max((r.timeout for r in relays), default=30.0)
        self.last_check = time.monotonic()
        self.last_heartbeat = self.last_check
        self.heartbeat_every = max(1.0, batch.settings.delivery_claim_timeout_seconds / 3)
        self.is_checked = False
        self.claim_lost = False  # a fenced write found a row of ours taken back
        self.commits = 0  # statements that committed acceptances

    # -- one round -----------------------------------------------------------------------

    def run(self, rows: list[ClaimedRow]) -> str | None:
        """Send ``rows``; None when all are settled, else why the batch stops (the send's
        new status, or _CLAIM_LOST)."""
        if not rows:
            return None
        n = len(self.lanes)
        for row in rows:
            self.lanes[row.lane % n].queue.append(row)
        writer = self.batch.writer
        if not self.is_checked:
            # The claim was committed a moment ago; confirm it once before the first dots.
            self.is_checked = True
            if not writer.is_claimed(rows[0].id):
                return self._abandon()
            for lane in self.lanes:
                lane.fenced = True
        stopping: str | None = None
        while True:
            if self.claim_lost:
                return self._abandon()
            tick = time.monotonic()
            if stopping is None and tick - self.last_check >= _STATUS_CHECK_SECONDS:
                self.last_check = tick
                status = writer.send_status(self.batch.send_id)
                if status != "running":
                    stopping = status or "cancelled"
                    self._stop_lanes(stopping)
            if tick - self.last_heartbeat >= self.heartbeat_every:
                self.last_heartbeat = tick
                writer.heartbeat(self.batch.send_id, self.batch.clock())
            if stopping is None:
                for lane in self.lanes:
                    if lane.phase == _IDLE and lane.queue:
                        self._start(lane)
            self._collect(wait=False)
            if self.committing is None and self.accepted and self._time_to_commit(tick):
                # One commit in flight at a time; acceptances gather while it runs.
                self.committing, self.accepted = self.accepted, []
                writer.submit_accepted(
                    [(row.id, message_id, text) for _, row, message_id, text in self.committing]
                )
            if self.claim_lost:
                return self._abandon()
            for lane in self.lanes:
                if lane.phase == _READY and lane.fenced:
                    self._send_body(lane)
            busy = [lane for lane in self.lanes if lane.phase in (_ENVELOPE, _DOT)]
            if not busy:
                if self.committing is not None:
                    self._collect(wait=True)
                    continue
                if self.accepted or any(lane.queue or lane.phase == _READY for lane in self.lanes):
                    continue
                return stopping
            for lane in self._readable(busy):
                if lane.phase == _ENVELOPE:
                    self._read_envelope(lane)
                elif lane.phase == _DOT:
                    self._read_dot(lane)

    def _time_to_commit(self, now: float) -> bool:
        """Commit acceptances now, or let a few more gather first? Each statement costs the
        database about as much as several rows in it, so a short wait (while other lanes
        still have replies coming) buys fewer statements; lanes with nothing else to do never
        wait for it."""
        if len(self.accepted) >= self.commit_rows:
            return True
        if now - self.first_accepted_at >= _COMMIT_GATHER_SECONDS:
            return True
        return not any(lane.phase in (_ENVELOPE, _DOT) for lane in self.lanes)

    def _readable(self, busy: list[_Lane]) -> list[_Lane]:
        ready = [
            lane for lane in busy if lane.client is not None and lane.client.has_buffered_reply
        ]
        if ready:
            return ready
        by_fd = {lane.client.fileno(): lane for lane in busy if lane.client is not None}
        database = self.batch.writer.fileno()
        timeout = self.timeout
        if self.accepted and self.committing is None:
            # Wake up when the acceptances waiting are due to be committed.
            due = self.first_accepted_at + _COMMIT_GATHER_SECONDS - time.monotonic()
            timeout = max(0.0, due)
        try:
            readable, _, _ = wait_readable(
                [*by_fd, database] if database >= 0 else list(by_fd), [], [], timeout
            )
        except (OSError, ValueError):
            readable = []
        if not readable and timeout < self.timeout:
            return []
        if not readable:
            # Nothing within the timeout: read the first one; its socket timeout reports it.
            return busy[:1]
        return [by_fd[fd] for fd in readable if fd in by_fd]

    def _collect(self, *, wait: bool) -> None:
        """Fence the lanes whose acceptances the database has confirmed."""
        if self.committing is None:
            return
        confirmed = self.batch.writer.take_confirmed(wait=wait)
        if confirmed is None:
            return
        committing, self.committing = self.committing, None
        self.commits += 1
        self.batch.result.sent += len(confirmed)
        for lane, row, _, _ in committing:
            if row.id in confirmed:
                lane.fenced = True
            else:
                lane.fenced = False
                self.claim_lost = True

    # -- lane steps ----------------------------------------------------------------------

    def _start(self, lane: _Lane) -> None:
        """Take the lane's next row: render it and write its envelope."""
        batch = self.batch
        while lane.queue:
            row = lane.queue.popleft()
            if row.domain in self.throttled:
                # The domain asked us to slow down during this batch: leave it for later.
                batch.release([row], batch.settings.delivery_domain_backoff_seconds)
                continue
            try:
                envelope_from, message_id, data = self.render(
                    self.recipient(
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
                if batch.writer.record(
                    row.id,
                    DeliveryStatus.FAILED,
                    code=None,
                    response=f"could not build the message: {exc}",
                    now=batch.clock(),
                ):
                    batch.result.failed += 1
                else:
                    self.claim_lost = True
                    return
                continue
            client = self._client(lane)
            if client is None:
                # No relay reachable: this lane's rows are deferred with backoff.
                for rest in [row, *lane.queue]:
                    if not batch.transient(
                        rest, None, "no SMTP relay reachable", Verdict(Outcome.DEFERRED)
                    ):
                        self.claim_lost = True
                lane.queue.clear()
                return
            try:
                client.write_envelope(envelope_from, row.email)
            except SMTPConnectionLost as exc:
                client.close()
                if not batch.lost(row, exc):
                    self.claim_lost = True
                    return
                continue
            lane.row = row
            lane.message = (message_id, data)
            lane.phase = _ENVELOPE
            return

    def _read_envelope(self, lane: _Lane) -> None:
        row, client = lane.row, lane.client
        assert row is not None and client is not None
        try:
            refusal = client.read_envelope()
        except SMTPConnectionLost as exc:
            self._settle(lane, self.batch.lost(row, exc))
            client.close()
            return
        if refusal is None:
            lane.phase = _READY
            return
        stage, reply = refusal
        self._refused(lane, row, stage, reply.code, reply.text)

    def _send_body(self, lane: _Lane) -> None:
        row, client, message = lane.row, lane.client, lane.message
        assert row is not None and client is not None and message is not None
        lane.fenced = False  # until this message's outcome is committed
        try:
            client.write_body(message[1], is_dot_safe=self.is_dot_safe)
        except SMTPConnectionLost as exc:
            self._settle(lane, self.batch.lost(row, exc))
            client.close()
            return
        lane.phase = _DOT

    def _read_dot(self, lane: _Lane) -> None:
        row, client, message = lane.row, lane.client, lane.message
        assert row is not None and client is not None and message is not None
        try:
            reply = client.read_body_reply()
        except SMTPConnectionLost as exc:
            self._settle(lane, self.batch.lost(row, exc))
            client.close()
            return
        if reply.is_positive:
            if not self.accepted:
                self.first_accepted_at = time.monotonic()
            self.accepted.append((lane, row, message[0], reply.text))
            lane.reconnects = 0
            lane.phase, lane.row, lane.message = _IDLE, None, None
            return
        self._refused(lane, row, Stage.DOT, reply.code, reply.text)

    def _refused(self, lane: _Lane, row: ClaimedRow, stage: Stage, code: int, text: str) -> None:
        self._settle(lane, self.batch.outcome(row, stage, code, text))
        if classify_reply(code, text, stage).is_domain_throttle:
            self.throttled.add(row.domain)

    def _settle(self, lane: _Lane, ours: bool) -> None:
        """The lane's message has its outcome written; ``ours`` fences the next one."""
        lane.fenced = ours
        if not ours:
            self.claim_lost = True
        lane.phase, lane.row, lane.message = _IDLE, None, None

    def _client(self, lane: _Lane) -> SMTPClient | None:
        if lane.client is not None and lane.client.is_connected:
            return lane.client
        if lane.client is not None:
            lane.reconnects += 1
        lane.client = _connect(self.relays, lane.reconnects)
        return lane.client

    # -- stopping ------------------------------------------------------------------------

    def _stop_lanes(self, status: str) -> None:
        """Paused or cancelled: messages not handed over yet go back; dots out are awaited."""
        back: list[ClaimedRow] = []
        for lane in self.lanes:
            if lane.phase in (_ENVELOPE, _READY):
                assert lane.row is not None
                back.append(lane.row)
                if lane.client is not None:
                    lane.client.close()  # no final dot was sent: nothing was handed over
                lane.phase, lane.row, lane.message = _IDLE, None, None
            back.extend(lane.queue)
            lane.queue.clear()
        back.sort(key=lambda r: r.id)
        self.batch.give_back(back, status)

    def _abandon(self) -> str:
        """Our claim was recovered by someone else: drop the connections, touch nothing."""
        for lane in self.lanes:
            if lane.client is not None:
                lane.client.close()
            lane.queue.clear()
            lane.phase, lane.row, lane.message = _IDLE, None, None
        self.accepted = []
        if self.committing is not None:
            self.batch.writer.take_confirmed(wait=True)
            self.committing = None
        return _CLAIM_LOST

    def close(self) -> None:
        """Say goodbye on every connection; commit what was accepted (also after an error).
        Only an idle session can take QUIT: one in the middle of a message is dropped (no
        final dot went out on it, or its reply was never read)."""
        for lane in self.lanes:
            if lane.client is not None:
                if lane.phase == _IDLE:
                    lane.client.quit()
                else:
                    lane.client.close()
        self._collect(wait=True)
        if self.accepted:
            accepted, self.accepted = self.accepted, []
            confirmed = self.batch.writer.record_accepted_many(
                [(row.id, message_id, text) for _, row, message_id, text in accepted]
            )
            self.batch.result.sent += len(confirmed)


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
