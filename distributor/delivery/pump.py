"""The event loop of one batch: its SMTP connections ("lanes") driven together.

A lane's message goes: envelope written (MAIL, RCPT, DATA pipelined, RFC 2920) -> replies
read -> body and final dot written once the lane is fenced -> reply read. The lane's next
envelope goes out in the same write as the body and final dot (RFC 2920 3.1), so its replies
come with the reply to the dot; its own final dot still waits for the fence. Acceptances of all
lanes are committed together in one statement per turn of the loop, while the next envelopes'
replies travel; a lane's next final dot waits for that commit (group commit: one commit in
flight, durable). The loop also moves the claim's heartbeat every few seconds, waits for
sockets at most that long, and gives up on a silent server after the relay's timeout, so a
live batch never looks dead to recovery.
"""

from __future__ import annotations

import time
from collections import deque
from select import select as wait_readable
from typing import TYPE_CHECKING

from distributor.delivery.ledger import ClaimedRow
from distributor.delivery.rendering import CompiledRelease, ReleaseMessage, recipient_of
from distributor.delivery.smtp_client import (
    SMTPClient,
    SMTPConnectionLost,
    SMTPRefused,
    SMTPUTF8NotOffered,
)
from distributor.logs import get_logger
from distributor.mail.outcomes import (
    RelayTrouble,
    Reply,
    Stage,
    classify_reply,
    relay_trouble,
    says_session_timed_out,
)
from distributor.mail.transport import SMTPConfig

if TYPE_CHECKING:
    from distributor.delivery.sender import Batch

log = get_logger("distributor.delivery.pump")

_STATUS_CHECK_SECONDS = 1.0  # how often a running batch looks for pause/cancel
_MAX_RECONNECTS = 3
# A lane's connection idle this long is checked before reuse (the server may have closed it).
_IDLE_CHECK_SECONDS = 0.5
# How long acceptances may wait for company before their commit goes out anyway.
_COMMIT_GATHER_SECONDS = 0.001

CLAIM_LOST = "claim lost"  # our rows were recovered by the sweep: stop touching them

# Lane phases
IDLE, ENVELOPE, READY, DOT = range(4)


class Lane:
    """One SMTP connection of a batch and the rows it carries, in id order."""

    __slots__ = (
        "client",
        "fenced",
        "message",
        "next",
        "phase",
        "queue",
        "reconnects",
        "relay",
        "resent",
        "row",
        "since",
        "stray",
    )

    def __init__(self, relay: SMTPConfig) -> None:
        self.relay = relay  # the relay this lane's connection goes to
        self.queue: deque[ClaimedRow] = deque()
        self.client: SMTPClient | None = None
        self.reconnects = 0
        self.phase = IDLE
        self.row: ClaimedRow | None = None
        self.message: tuple[str, bytes] | None = None  # (Message-ID, message bytes)
        # The row whose envelope went out behind the final dot of ``row`` (phase DOT): it
        # becomes the lane's row once that dot's reply is read.
        self.next: tuple[ClaimedRow, tuple[str, bytes]] | None = None
        # An envelope went out behind the final dot and its row was taken back (the batch or
        # the relay stopped): the connection is closed once the dot's reply is read.
        self.stray = False
        # Every earlier outcome of this lane is committed and the claim was ours then: the
        # lane may send its next final dot.
        self.fenced = False
        self.since = 0.0  # when the lane began waiting for its current reply
        self.resent = 0  # the row last put on a new connection after an idle one died


class Pump:
    """Drives the lanes of a batch together, one event loop, one database connection."""

    def __init__(
        self, batch: Batch, compiled: CompiledRelease, relays: list[SMTPConfig], lane_count: int
    ) -> None:
        self.batch = batch
        self.compiled = compiled
        # Built by mime.MessageTemplate: no line starts with a dot, no stuffing scan needed.
        self.is_dot_safe = compiled.is_dot_safe
        self.relays = relays
        # ``relays`` has one entry per lane (the relay whose connection that lane holds), or
        # fewer: then lanes take them in turn.
        self.lanes = [Lane(relays[i % len(relays)]) for i in range(lane_count)]
        # Relays that refused us during this batch: the reply and how long they are paused.
        self.stopped: dict[str, tuple[Reply, float]] = {}
        self.messages_per_connection = batch.settings.smtp_relay_messages_per_connection
        self.accepted: list[tuple[Lane, ClaimedRow, str, str]] = []
        # Acceptances whose commit is in flight (at most one statement at a time).
        self.committing: list[tuple[Lane, ClaimedRow, str, str]] | None = None
        self.first_accepted_at = 0.0
        # Rows worth a statement of their own without waiting (see _time_to_commit).
        self.commit_rows = max(1, lane_count // 4)
        self.throttled: set[str] = set()
        self.timeout = max((r.timeout for r in relays), default=30.0)
        settings = batch.settings
        stale = max(1.0, float(settings.delivery_claim_timeout_seconds))
        # Heartbeat several times per stale period; never block longer than that in one wait.
        self.heartbeat_every = max(0.25, min(2.0, stale / 5))
        self.connect_timeout = max(1.0, min(self.timeout, stale / 3))
        self.last_check = time.monotonic()
        self.last_heartbeat = self.last_check
        self.is_checked = False
        self.claim_lost = False  # a fenced write found a row of ours taken back
        self.stopping: str | None = None  # the send's new status once it is not running
        self.commits = 0  # statements that committed acceptances
        # The last wait in select() watched the database socket and it had nothing to read:
        # the next turn does not try a read of its own (one system call per turn saved).
        self.database_quiet = False
        # Lanes that may hold a whole reply already read from their socket, where select()
        # cannot see it: each lane that began waiting for a reply (``_await``) since the last
        # look. A lane's read buffer changes only when the pump reads from it, and every read
        # is followed by a wait for the next reply or by the lane leaving the busy phases, so
        # looking at these lanes alone finds every such reply (the other busy lanes were
        # looked at after their last read and found none).
        self.recheck: list[Lane] = []

    # -- one round -----------------------------------------------------------------------

    def run(self, rows: list[ClaimedRow]) -> str | None:
        """Send ``rows``; None when all are settled, else why the batch stops (the send's
        new status, or CLAIM_LOST)."""
        if not rows:
            return None
        self._queue(rows)
        if not self._confirm_claim_once(rows[0]):
            return self.abandon()
        while True:
            if self.claim_lost:
                return self.abandon()
            tick = time.monotonic()
            self._check_send_status(tick)
            self.beat(tick)
            if self.claim_lost:
                return self.abandon()
            self._start_idle_lanes()
            self._collect(wait=False)
            self._commit_if_due(tick)
            if self.claim_lost:
                return self.abandon()
            self._send_fenced_bodies()
            busy = [lane for lane in self.lanes if lane.phase in (ENVELOPE, DOT)]
            if busy:
                self._read_replies(busy)
            elif self.committing is not None:
                self._collect(wait=True)  # only the commit is on its way: wait for it
            elif not self._has_work_left():
                return self.stopping

    def _queue(self, rows: list[ClaimedRow]) -> None:
        """Each row joins its lane's queue, in id order."""
        n = len(self.lanes)
        for row in rows:
            self.lanes[row.lane % n].queue.append(row)

    def _confirm_claim_once(self, row: ClaimedRow) -> bool:
        """The claim was committed a moment ago; confirm it once before the first dots."""
        if self.is_checked:
            return True
        self.is_checked = True
        if not self.batch.writer.is_claimed(row.id):
            return False
        for lane in self.lanes:
            lane.fenced = True
        return True

    def _check_send_status(self, tick: float) -> None:
        """Every second or so: a send paused or cancelled by staff stops the lanes."""
        if self.stopping is not None or tick - self.last_check < _STATUS_CHECK_SECONDS:
            return
        self.last_check = tick
        status = self.batch.writer.send_status(self.batch.send_id)
        if status != "running":
            self._stop_lanes(status or "cancelled")

    def _start_idle_lanes(self) -> None:
        """Every idle lane with rows queued takes its next one."""
        if self.stopping is not None:
            return
        for lane in self.lanes:
            if lane.phase == IDLE and lane.queue:
                self._start(lane)
                if self.stopping is not None or self.claim_lost:
                    return

    def _commit_if_due(self, tick: float) -> None:
        """One commit in flight at a time; acceptances gather while it runs."""
        if self.committing is None and self.accepted and self._time_to_commit(tick):
            self.committing, self.accepted = self.accepted, []
            self.batch.writer.submit_accepted(
                [(row.id, message_id, text) for _, row, message_id, text in self.committing]
            )

    def _send_fenced_bodies(self) -> None:
        """Lanes whose envelope was accepted and whose last outcome is committed send their
        message's body and final dot."""
        if self.stopping is not None:
            return
        for lane in self.lanes:
            if lane.phase == READY and lane.fenced:
                self._send_body(lane)

    def _read_replies(self, busy: list[Lane]) -> None:
        """Read the replies that have come (or give up on servers silent for too long)."""
        for lane in self._readable(busy):
            if lane.phase == ENVELOPE:
                self._read_envelope(lane)
            elif lane.phase == DOT:
                self._read_dot(lane)

    def _has_work_left(self) -> bool:
        """No reply and no commit on its way: acceptances wait for their commit, or rows for
        a lane (unless the batch is stopping)."""
        if self.accepted:
            return True
        return self.stopping is None and any(
            lane.queue or lane.phase == READY for lane in self.lanes
        )

    def beat(self, tick: float | None = None) -> None:
        """Move the claim's heartbeat when it is due; a recovered claim stops the batch."""
        tick = time.monotonic() if tick is None else tick
        if tick - self.last_heartbeat >= self.heartbeat_every:
            self.last_heartbeat = tick
            if not self.batch.writer.heartbeat():
                self.claim_lost = True
            self.batch.renew_leases()

    def _time_to_commit(self, now: float) -> bool:
        """Commit acceptances now, or let a few more gather first? Each statement costs the
        database about as much as several rows in it, so a short wait (while other lanes
        still have replies coming) buys fewer statements; lanes with nothing else to do never
        wait for it."""
        if len(self.accepted) >= self.commit_rows:
            return True
        if now - self.first_accepted_at >= _COMMIT_GATHER_SECONDS:
            return True
        return not any(lane.phase in (ENVELOPE, DOT) for lane in self.lanes)

    def _await(self, lane: Lane, phase: int) -> None:
        """The lane now waits for the reply of ``phase`` (ENVELOPE or DOT)."""
        lane.phase = phase
        lane.since = time.monotonic()
        self.recheck.append(lane)

    def _readable(self, busy: list[Lane]) -> list[Lane]:
        self.database_quiet = False
        recheck, self.recheck = self.recheck, []
        ready = [
            lane
            for lane in dict.fromkeys(recheck)  # once each, in order
            if lane.phase in (ENVELOPE, DOT)
            and lane.client is not None
            and lane.client.has_buffered_reply
        ]
        if ready:
            return ready
        by_fd = {lane.client.fileno(): lane for lane in busy if lane.client is not None}
        database = self.batch.writer.fileno()
        # Never wait longer than a heartbeat period: the loop must keep the claim alive.
        timeout = self.heartbeat_every
        if self.accepted and self.committing is None:
            # Wake up when the acceptances waiting are due to be committed.
            due = self.first_accepted_at + _COMMIT_GATHER_SECONDS - time.monotonic()
            timeout = max(0.0, min(timeout, due))
        try:
            readable, _, _ = wait_readable(
                [*by_fd, database] if database >= 0 else list(by_fd), [], [], timeout
            )
        except (OSError, ValueError):
            readable = []
        self.database_quiet = database >= 0 and database not in readable
        if not readable:
            now = time.monotonic()
            for lane in busy:
                if now - lane.since > self.timeout:
                    self._expire(lane)
            return []
        return [by_fd[fd] for fd in readable if fd in by_fd]

    def _expire(self, lane: Lane) -> None:
        """The server stayed silent for the relay's whole timeout: the connection is lost."""
        row, client = lane.row, lane.client
        assert row is not None
        stage = Stage.DOT if lane.phase == DOT else Stage.MAIL
        if client is not None:
            client.close()
        self._take_back_next(lane)
        self._lost(lane, row, SMTPConnectionLost(stage, "no reply in time"))

    def _collect(self, *, wait: bool) -> None:
        """Fence the lanes whose acceptances the database has confirmed."""
        if self.committing is None:
            return
        if not wait and self.database_quiet:
            return  # select() just saw nothing from the database
        confirmed = self.batch.writer.take_confirmed(wait=wait)
        if confirmed is None:
            return
        committing, self.committing = self.committing, None
        self.commits += 1
        self.batch.result.sent += len(confirmed)
        for lane, row, message_id, text in committing:
            if row.id in confirmed:
                lane.fenced = True
            else:
                lane.fenced = False
                self.claim_lost = True
                # We hold its 250: recovery made it in doubt, we know better.
                self.batch.held_accepted.append((row, message_id, text))

    # -- lane steps ----------------------------------------------------------------------

    def _start(self, lane: Lane) -> None:
        """Take the lane's next row: build its message and write its envelope."""
        stopped = self.stopped.get(_key(lane.relay))
        if stopped is not None:
            self._stop_relay(_key(lane.relay), *stopped)
            return
        while lane.queue:
            row = lane.queue.popleft()
            if row.domain in self.throttled:
                # The domain asked us to slow down during this batch: leave it for later.
                self.batch.put_back([row], self.batch.settings.delivery_domain_backoff_seconds)
                continue
            message = self._message_for(row)
            if message is None:
                if self.claim_lost:
                    return
                continue
            client = self._session_for(lane, row)
            if client is None:
                return
            oversize = client.refuse_oversize(len(message[2]))
            if oversize is not None:
                # RFC 1870: over the relay's SIZE; not a byte of it goes out.
                self._refused(lane, row, oversize)
                return
            if self._write_envelope(lane, client, row, message) or self.claim_lost:
                return

    def _message_for(self, row: ClaimedRow) -> ReleaseMessage | None:
        """The row's message; None when it cannot be built (the row failed, or was not
        ours any more)."""
        try:
            return self.compiled.message_for(recipient_of(row))
        except Exception as exc:  # a bad row must not sink the batch
            log.exception("delivery.render_failed", delivery_id=row.id)
            if not self.batch.unbuildable(row, exc):
                self.claim_lost = True
            return None

    def _session_for(self, lane: Lane, row: ClaimedRow) -> SMTPClient | None:
        """The lane's SMTP session; None when the relay would not give one: the row goes
        back to the front of the lane's queue and the send or the relay stops."""
        client, refusal = self._client(lane)
        if client is not None:
            return client
        lane.queue.appendleft(row)
        if self.batch.pause_if_refused(refusal):
            self._stop_lanes("paused")  # every row not handed over goes back
            return None
        assert refusal is not None
        # The relay's own answer (or the connection's error) goes on every row sent
        # back, never a generic phrase.
        self._relay_refused(lane, refusal)
        return None

    def _write_envelope(
        self, lane: Lane, client: SMTPClient, row: ClaimedRow, message: ReleaseMessage
    ) -> bool:
        """Pipeline MAIL, RCPT and DATA; True when the lane now waits for their replies.
        False: the row is settled or queued again, and the lane takes its next one."""
        envelope_from, message_id, data = message
        try:
            client.write_envelope(envelope_from, row.email, len(data))
        except SMTPUTF8NotOffered as exc:
            # Nothing was written: the session stays usable for the lane's next row.
            if not self.batch.not_carried(row, exc.relay, exc.missing):
                self.claim_lost = True
            return False
        except SMTPConnectionLost as exc:
            client.close()
            if not self._resend(lane, row):
                self._lost(lane, row, exc)
                lane.phase = IDLE
            return False
        lane.row = row
        lane.message = (message_id, data)
        self._await(lane, ENVELOPE)
        return True

    def _read_envelope(self, lane: Lane) -> None:
        row, client = lane.row, lane.client
        assert row is not None and client is not None
        try:
            refusal = client.read_envelope()
        except SMTPConnectionLost as exc:
            client.close()
            if self._resend(lane, row):
                return
            self._lost(lane, row, exc)
            return
        if refusal is None:
            lane.phase = READY
            return
        if says_session_timed_out(refusal[1]) and self._resend(lane, row):
            return
        self._refused(lane, row, refusal[1])

    def _resend(self, lane: Lane, row: ClaimedRow) -> bool:
        """The connection died before the message's body went out (a server that timed out
        an idle session, a reset): nothing was handed over, so send it again at once on a new
        connection, with no attempt charged and no delay. Once per row; never after a final
        dot was written (RFC 1047)."""
        if lane.resent == row.id:
            return False
        lane.resent = row.id
        if lane.client is not None:
            lane.client.close()
        lane.phase, lane.row, lane.message = IDLE, None, None
        lane.queue.appendleft(row)  # first again: the lane keeps id order
        log.info("delivery.resent_on_new_connection", delivery_id=row.id)
        return True

    def _send_body(self, lane: Lane) -> None:
        row, client, message = lane.row, lane.client, lane.message
        assert row is not None and client is not None and message is not None
        lane.fenced = False  # until this message's outcome is committed
        self._await(lane, DOT)  # from the first byte of the body on, the outcome may be in doubt
        lane.next, envelope = self._pipelined_next(lane, client)
        try:
            client.write_body(message[1], is_dot_safe=self.is_dot_safe, then=envelope)
        except SMTPConnectionLost as exc:
            client.close()
            self._take_back_next(lane)
            self._lost(lane, row, exc)

    def _pipelined_next(
        self, lane: Lane, client: SMTPClient
    ) -> tuple[tuple[ClaimedRow, tuple[str, bytes]] | None, bytes]:
        """The lane's next row and its envelope, to go out behind this final dot (RFC 2920);
        (None, b"") when the next row waits for the reply instead: no PIPELINING, nothing
        queued, the connection's last message, or a row for the careful path of ``_start``
        (a slowed-down domain, a stopped relay, a message that cannot be built or is over
        the relay's SIZE, an address the relay cannot carry)."""
        if not client.is_pipelining or not lane.queue or self.stopping is not None:
            return None, b""
        limit = self.messages_per_connection
        if limit and client.messages_sent + 1 >= limit:
            return None, b""
        row = lane.queue[0]
        if row.domain in self.throttled or (self.stopped and _key(lane.relay) in self.stopped):
            return None, b""
        try:
            envelope_from, message_id, data = self.compiled.message_for(recipient_of(row))
            if client.refuse_oversize(len(data)) is not None:
                return None, b""
            envelope = client.pipelined_envelope(envelope_from, row.email, len(data))
        except Exception:  # ``_start`` builds it again and records why it cannot go
            return None, b""
        lane.queue.popleft()
        return (row, (message_id, data)), envelope

    def _take_back_next(self, lane: Lane) -> None:
        """The connection is gone: the row whose envelope went out behind the final dot was
        never handed over (no byte of its body went out) and is first in the lane again."""
        if lane.next is not None:
            lane.queue.appendleft(lane.next[0])
            lane.next = None
        lane.stray = False

    def _read_dot(self, lane: Lane) -> None:
        row, client, message = lane.row, lane.client, lane.message
        assert row is not None and client is not None and message is not None
        try:
            reply = client.read_body_reply()
        except SMTPConnectionLost as exc:
            client.close()
            self._take_back_next(lane)
            self._lost(lane, row, exc)
            return
        nxt, lane.next = lane.next, None
        if reply.is_positive:
            if not self.accepted:
                self.first_accepted_at = time.monotonic()
            # Stored as the reply that decided the row: "dot 250 2.0.0 Ok: queued as ...".
            self.accepted.append((lane, row, message[0], reply.describe()))
            self.batch.count_refusal(None)  # an acceptance ends a run of the same refusal
            lane.reconnects = 0
            if nxt is not None:
                # Its envelope's replies came with this one (or are on their way); its final
                # dot waits for the fence like any other.
                lane.row, lane.message = nxt
                self._await(lane, ENVELOPE)
                return
            lane.phase, lane.row, lane.message = IDLE, None, None
            if lane.stray:
                self._drop_connection(lane)
            return
        if nxt is not None:
            # Refused: the next row waits for what the refusal does to the relay or the send,
            # first in the lane, and the envelope out behind the dot goes with the connection.
            lane.queue.appendleft(nxt[0])
            lane.stray = True
        if lane.stray:
            self._drop_connection(lane)
        self._refused(lane, row, reply)

    @staticmethod
    def _drop_connection(lane: Lane) -> None:
        """Close a connection with an envelope out whose row was taken back (nothing of that
        message was handed over); the lane's next row opens a new one."""
        lane.stray = False
        if lane.client is not None:
            lane.client.close()
            lane.client = None

    def _lost(self, lane: Lane, row: ClaimedRow, exc: SMTPConnectionLost) -> None:
        key = _key(lane.relay)
        self._settle(lane, self.batch.lost(row, exc, relay=key))
        if exc.stage is not Stage.DOT:
            # No limit by itself, but several in a row pause the relay (relaystate).
            pause = self.batch.relay_trouble(
                key, RelayTrouble.LOST, Reply(exc.stage, 0, f"connection lost: {exc.reason}")
            )
            if pause > 0:
                self._stop_relay(key, Reply(exc.stage, 0, f"connection lost: {exc.reason}"), pause)

    def _relay_refused(self, lane: Lane, reply: Reply) -> None:
        """The relay refused the session (connect, greeting, EHLO, STARTTLS, AUTH): every
        worker slows down or pauses, and this relay's rows go back unsent."""
        key = _key(lane.relay)
        trouble = relay_trouble(reply) or RelayTrouble.SESSION
        if trouble is RelayTrouble.LOST:
            trouble = RelayTrouble.SESSION
        pause = self.batch.relay_trouble(key, trouble, reply)
        self._stop_relay(key, reply, pause)

    def _stop_relay(self, key: str, reply: Reply, pause: float) -> None:
        """Rows of this relay's lanes not handed over go back to the queue with the relay's
        reply and no attempt; final dots already out are still read."""
        self.stopped.setdefault(key, (reply, pause))
        back: list[ClaimedRow] = []
        for lane in self.lanes:
            if _key(lane.relay) != key:
                continue
            self._take_next_for_stop(lane, back)
            if lane.phase in (ENVELOPE, READY):
                assert lane.row is not None
                back.append(lane.row)
                if lane.client is not None:
                    lane.client.close()
                lane.phase, lane.row, lane.message = IDLE, None, None
            elif lane.phase == IDLE and lane.client is not None:
                lane.client.quit()
                lane.client = None
            back.extend(lane.queue)
            lane.queue.clear()
        if back:
            back.sort(key=lambda r: r.id)
            if self.batch.put_back_for_relay(back, reply, relay=key, wait=pause) < len(back):
                self.claim_lost = True

    def _refused(self, lane: Lane, row: ClaimedRow, reply: Reply) -> None:
        verdict = classify_reply(reply)
        trouble = relay_trouble(reply) if not verdict.stops_the_send else None
        if self.batch.count_refusal(reply) and trouble is None:
            trouble = RelayTrouble.SESSION  # one recipient's answer, given to each in turn
        key = _key(lane.relay)
        pause = 0.0
        if trouble is not None and trouble is not RelayTrouble.PROTOCOL:
            pause = self.batch.relay_trouble(key, trouble, reply)
        self._settle(lane, self.batch.outcome(row, reply, verdict, relay=key, wait=pause))
        if trouble in (RelayTrouble.CONNECTIONS, RelayTrouble.RATE, RelayTrouble.SESSION):
            self._stop_relay(key, reply, pause)
        if verdict.is_domain_throttle:
            self.throttled.add(row.domain)
        if self.batch.stop_reason is not None and self.stopping is None:
            self._stop_lanes("paused")

    def _settle(self, lane: Lane, ours: bool) -> None:
        """The lane's message has its outcome written; ``ours`` fences the next one."""
        lane.fenced = ours
        if not ours:
            self.claim_lost = True
        lane.phase, lane.row, lane.message = IDLE, None, None

    def _client(self, lane: Lane) -> tuple[SMTPClient | None, Reply | None]:
        client = lane.client
        if (
            client is not None
            and client.is_connected
            and self.messages_per_connection
            and client.messages_sent >= self.messages_per_connection
        ):
            # The relay's limit of messages per connection (SendGrid: 5,000): a new session.
            client.quit()
            lane.client = None
        elif client is not None and client.is_connected:
            idle = time.monotonic() - client.last_used
            if idle < _IDLE_CHECK_SECONDS or not client.has_gone_away():
                return client, None
            # The server closed the session while it sat idle (e.g. Postfix smtpd_timeout):
            # a new one is no failure and costs the next message nothing.
            log.info("delivery.idle_connection_closed", relay=client.config.host, idle=idle)
        elif client is not None:
            lane.reconnects += 1
        lane.client, refusal = self._connect(lane)
        return lane.client, refusal

    def _connect(self, lane: Lane) -> tuple[SMTPClient | None, Reply | None]:
        """A session with the lane's relay; None and its refusal (or the connection's error)
        when it would not. One try: a refusal is the relay's state, which every worker
        shares, and the rows wait for it."""
        if lane.reconnects > _MAX_RECONNECTS:
            return None, Reply(Stage.CONNECT, 0, "gave up reconnecting to the relay")
        self.beat()  # a blackholed relay takes a whole connect timeout
        client = SMTPClient(lane.relay)
        try:
            client.connect(timeout=self.connect_timeout)
            return client, None
        except SMTPRefused as exc:
            last = exc.reply
        except SMTPConnectionLost as exc:
            last = Reply(exc.stage, 0, exc.reason)
        log.warning("delivery.connect_failed", relay=_key(lane.relay), error=last.describe())
        return None, last

    # -- stopping ------------------------------------------------------------------------

    def unsent_rows(self) -> list[ClaimedRow]:
        """Rows of the lanes whose final dot was not written: never handed over."""
        back: list[ClaimedRow] = []
        for lane in self.lanes:
            self._take_next_for_stop(lane, back)
            if lane.phase in (ENVELOPE, READY):
                assert lane.row is not None
                back.append(lane.row)
                if lane.client is not None:
                    lane.client.close()  # no final dot was sent: nothing was handed over
                lane.phase, lane.row, lane.message = IDLE, None, None
            back.extend(lane.queue)
            lane.queue.clear()
        return sorted(back, key=lambda r: r.id)

    @staticmethod
    def _take_next_for_stop(lane: Lane, back: list[ClaimedRow]) -> None:
        """The row whose envelope went out behind a final dot goes back with the rows not
        handed over; the dot's reply is still read, then the connection is closed."""
        if lane.next is not None:
            back.append(lane.next[0])
            lane.next = None
            lane.stray = True

    def _stop_lanes(self, status: str) -> None:
        """Paused or cancelled: messages not handed over yet go back; dots out are awaited."""
        self.stopping = status
        self.batch.put_back_on_stop(self.unsent_rows(), status)

    def abandon(self) -> str:
        """Our claim was recovered by someone else: drop the connections, touch nothing
        except what we know for sure about rows recovery made in doubt."""
        for lane in self.lanes:
            if lane.client is not None:
                lane.client.close()
            lane.queue.clear()
            lane.phase, lane.row, lane.message = IDLE, None, None
            lane.next, lane.stray = None, False
        if self.committing is not None:
            committing, self.committing = self.committing, None
            confirmed = self.batch.writer.take_confirmed(wait=True) or set()
            self.batch.result.sent += len(confirmed)
            self.batch.held_accepted.extend(
                (row, message_id, text)
                for _, row, message_id, text in committing
                if row.id not in confirmed
            )
        self.batch.held_accepted.extend((row, m, t) for _, row, m, t in self.accepted)
        self.accepted = []
        return CLAIM_LOST

    def dots_out(self) -> list[tuple[Lane, ClaimedRow]]:
        """Lanes whose final dot went out and whose reply was not read yet."""
        return [(lane, lane.row) for lane in self.lanes if lane.phase == DOT and lane.row]

    def close(self) -> None:
        """Say goodbye on every connection; commit what was accepted (also after an error).
        Only an idle session can take QUIT: one in the middle of a message is dropped (no
        final dot went out on it, or its reply was never read)."""
        for lane in self.lanes:
            if lane.client is not None:
                if lane.phase == IDLE:
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
            self.batch.held_accepted.extend(
                (row, m, t) for _, row, m, t in accepted if row.id not in confirmed
            )


def _key(relay: SMTPConfig) -> str:
    return f"{relay.host}:{relay.port}"


def reply_of(lane: Lane) -> Reply | None:
    """Read the reply to a final dot already written (after the batch stopped otherwise)."""
    client = lane.client
    if client is None:
        return None
    try:
        return client.read_body_reply()
    except SMTPConnectionLost:
        return None
