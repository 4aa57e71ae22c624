"""The delivery ledger: state machines, atomic claiming, progress records and recovery sweeps.

Single rows move through ``move_delivery`` (which raises on an illegal move). Batches move with
set-based UPDATEs whose WHERE clause names the current status: that guard is the transition
check for a batch, and it is what makes a duplicated or late worker harmless.

How a message is protected against loss and duplication. A batch drives a few SMTP
connections at once ("lanes"; a row's lane is fixed by its recipient domain when it is
claimed, and stored), and each lane sends its rows in id order:

1. claim: rows go queued -> sending with ``claimed_by`` and ``claim_lane``; that commit
   happens BEFORE any SMTP.
2. each outcome is committed as soon as it is known: a refusal at once; acceptances (250) of
   all lanes together in one statement, before any of those lanes sends its NEXT final dot,
   overlapped with the next messages' envelope replies (``ProgressWriter``, autocommit).

So whenever a lane sends a final dot, every earlier row of that lane already has its outcome in
the database. If the worker dies, ``recover_stale_claims`` finds its rows still in
``sending``: in each lane the lowest of them may have been accepted (its dot went out, or its
250 had not been written yet) and becomes UNKNOWN; every later one was never handed over and
is queued again. At most one message per open connection is ever in doubt, and it is never
resent without a person deciding to. Every write is fenced by ``claimed_by`` and status
``sending``, and no final dot goes out before a fenced write (or check) has confirmed the claim
is still ours, so a worker that stalls past the claim timeout stops instead of sending twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from distributor.db import UTCDateTime
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.statemachine import StateMachine

D = DeliveryStatus

DELIVERY_MACHINE: StateMachine[DeliveryStatus] = StateMachine(
    "delivery",
    {
        D.QUEUED: {D.SENDING, D.CANCELLED},
        # sending -> queued: released unsent (rate limit, pause) or recovered, never handed over.
        D.SENDING: {D.SENT, D.DEFERRED, D.FAILED, D.UNKNOWN, D.QUEUED, D.CANCELLED},
        D.DEFERRED: {D.QUEUED, D.CANCELLED},
        D.FAILED: {D.QUEUED},  # staff: retry failed
        D.UNKNOWN: {D.QUEUED},  # staff decided to resend
        D.DIGEST: {D.SENT, D.FAILED, D.CANCELLED},  # the daily digest took it
    },
)

S = SendStatus

SEND_MACHINE: StateMachine[SendStatus] = StateMachine(
    "send",
    {
        S.SCHEDULED: {S.RUNNING, S.CANCELLED},
        S.RUNNING: {S.PAUSED, S.CANCELLED, S.FINISHED},
        S.PAUSED: {S.RUNNING, S.CANCELLED},
        S.FINISHED: {S.RUNNING},  # retry failed / resend unknown reopens it
        S.CANCELLED: {S.RUNNING, S.SCHEDULED},  # started or scheduled again
    },
)

FINAL_STATUSES = frozenset({D.SENT, D.FAILED, D.UNKNOWN, D.CANCELLED, D.DIGEST})
PENDING_STATUSES = frozenset({D.QUEUED, D.SENDING, D.DEFERRED})


def move_delivery(delivery: Delivery, target: DeliveryStatus) -> None:
    """Move one row, checking the state machine."""
    DELIVERY_MACHINE.check(delivery.status, target)
    delivery.status = target


def move_send(send: Send, target: SendStatus) -> None:
    SEND_MACHINE.check(send.status, target)
    send.status = target


# -- claiming ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ClaimedRow:
    id: int
    journalist_id: int | None
    email: str
    domain: str
    verp_token: str
    matched_beats: str
    attempts: int
    first_attempt_at: dt.datetime | None
    name: str
    is_tracking_allowed: bool
    lane: int = 0  # which SMTP connection of the batch carries it (``lane_of`` its domain)


def lane_of(domain: str, lanes: int) -> int:
    """The lane of a recipient domain: the first byte of its SHA-256, modulo the lane count.
    The claim computes the same in SQL and stores it, so recovery can find each lane's row in
    doubt; one domain always shares a lane, so a batch opens one connection per domain."""
    return hashlib.sha256(domain.encode("utf-8")).digest()[0] % max(1, lanes)


# The ids are picked by the (send_id, status, next_attempt_at) index and locked with SKIP
# LOCKED, then updated through the primary key (= ANY(ARRAY(...)) keeps the planner from
# hashing the whole table). No ORDER BY: sorting every queued row of a big send on each claim
# costs more than the claim; the batch is sorted by id in Python.
_CLAIM_PG = """
UPDATE deliveries AS d
SET status = 'sending', claimed_by = :worker, claimed_at = :now,
    first_attempt_at = COALESCE(d.first_attempt_at, :now), updated_at = :now,
    claim_lane = get_byte(sha256(convert_to(d.recipient_domain, 'UTF8')), 0) % :lanes
WHERE d.id = ANY(ARRAY(
    SELECT q.id FROM deliveries q
    WHERE q.send_id = :send_id AND q.status = 'queued'
      AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= :now)
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
RETURNING d.id, d.journalist_id, d.email, d.recipient_domain, d.verp_token, d.matched_beats,
          d.attempts, d.first_attempt_at,
          COALESCE((SELECT j.name FROM journalists j WHERE j.id = d.journalist_id), ''),
          COALESCE(
              (SELECT j.is_tracking_allowed FROM journalists j WHERE j.id = d.journalist_id),
              false
          ),
          d.claim_lane
"""

# SQLite has one writer at a time, so the sub-select cannot race; RETURNING needs 3.35.
_CLAIM_SQLITE = """
UPDATE deliveries
SET status = 'sending', claimed_by = :worker, claimed_at = :now,
    first_attempt_at = COALESCE(first_attempt_at, :now), updated_at = :now,
    claim_lane = dist_lane(recipient_domain, :lanes)
WHERE id IN (
    SELECT id FROM deliveries
    WHERE send_id = :send_id AND status = 'queued'
      AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
      AND EXISTS (SELECT 1 FROM sends s WHERE s.id = :send_id AND s.status = 'running')
    ORDER BY id LIMIT :limit
)
RETURNING id, journalist_id, email, recipient_domain, verp_token, matched_beats, attempts,
          first_attempt_at, claim_lane
"""


def claim_batch(
    conn: Connection, *, send_id: int, worker: str, limit: int, now: dt.datetime, lanes: int = 1
) -> list[ClaimedRow] | None:
    """Claim up to ``limit`` due queued rows of a running send (None: the send is not running).

    Runs inside the caller's transaction; the caller commits before talking SMTP.
    """
    is_postgres = conn.dialect.name == "postgresql"
    if is_postgres:
        # A plain read, not a lock: claims must not queue behind each other on the send's row.
        # A pause that lands just after this read is seen by the batch within a second.
        status = conn.execute(select(Send.status).where(Send.id == send_id)).scalar()
        if status is not SendStatus.RUNNING:
            return None
    params = {
        "send_id": send_id,
        "worker": worker,
        "limit": limit,
        "now": now,
        "lanes": max(1, lanes),
    }
    binds = (
        bindparam("send_id", type_=Integer()),
        bindparam("worker", type_=String()),
        bindparam("limit", type_=Integer()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("lanes", type_=Integer()),
    )
    columns = {"first_attempt_at": UTCDateTime()}
    if is_postgres:
        rows = conn.execute(text(_CLAIM_PG).bindparams(*binds).columns(**columns), params).all()
        claimed = [ClaimedRow(*row) for row in rows]
    else:
        # SQLite: the write comes first, so the transaction takes the write lock at once (a
        # read-then-write transaction in WAL mode fails with "database is locked" instead of
        # waiting when another worker wrote in between).
        raw = conn.connection.driver_connection
        raw.create_function("dist_lane", 2, lane_of, deterministic=True)  # type: ignore[union-attr]
        rows = conn.execute(text(_CLAIM_SQLITE).bindparams(*binds).columns(**columns), params).all()
        if not rows:
            status = conn.execute(select(Send.status).where(Send.id == send_id)).scalar()
            if status is not SendStatus.RUNNING:
                return None
        people: dict[int, tuple[str, bool]] = {}
        journalist_ids = [r[1] for r in rows if r[1] is not None]
        if journalist_ids:
            found = conn.execute(
                text(
                    "SELECT id, name, is_tracking_allowed FROM journalists WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": journalist_ids},
            )
            people = {int(i): (n or "", bool(t)) for i, n, t in found}
        claimed = [
            ClaimedRow(*row[:8], *people.get(row[1], ("", False)), row[8])  # type: ignore[call-arg]
            for row in rows
        ]
    claimed.sort(key=lambda r: r.id)
    return claimed


# -- per-message progress ---------------------------------------------------------------------


_MARK_NAME = b"distributor_delivery_accepted"
_MARK_PG = (
    b"UPDATE deliveries SET status = 'sent', sent_at = clock_timestamp(), message_id = $1, "
    b"smtp_code = 250, smtp_response = $2, attempts = attempts + 1, next_attempt_at = NULL, "
    b"updated_at = clock_timestamp() "
    b"WHERE id = $3::bigint AND claimed_by = $4 AND status = 'sending'"
)
_MARK_MANY_NAME = b"distributor_delivery_accepted_many"
_MARK_MANY_PG = (
    b"UPDATE deliveries AS d SET status = 'sent', sent_at = clock_timestamp(), "
    b"message_id = v.message_id, smtp_code = 250, smtp_response = v.response, "
    b"attempts = d.attempts + 1, next_attempt_at = NULL, updated_at = clock_timestamp() "
    b"FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, message_id, response) "
    b"WHERE d.id = v.id AND d.claimed_by = $4 AND d.status = 'sending' RETURNING d.id"
)
_COMMAND_OK = 1  # libpq PGRES_COMMAND_OK
_TUPLES_OK = 2  # libpq PGRES_TUPLES_OK


def reply_text(response: str, limit: int = 500) -> str:
    """A server's reply as stored: NUL removed (PostgreSQL text cannot hold it), truncated."""
    return response.replace("\x00", "")[:limit]


def pg_text_array(values: Sequence[str]) -> bytes:
    """A PostgreSQL array literal of text values (quoted and escaped; no NUL, see reply_text)."""
    parts = []
    for value in values:
        if "\\" in value or '"' in value:
            value = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append('"' + value + '"')
    return ("{" + ",".join(parts) + "}").encode("utf-8", "replace")


class ProgressWriter:
    """Autocommit writes of one batch: the in-flight marker per message, refusals as they
    happen, accepted rows in bulk. Every write is guarded by ``claimed_by`` and status
    ``sending``, so a worker whose claim was recovered cannot overwrite anyone.

    On PostgreSQL the markers commit with ``synchronous_commit = off``: they survive the death of
    the worker at once (the server has them); only a crash of the database server itself within
    its WAL writer delay could forget a marker.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.worker = worker
        self.is_postgres = engine.dialect.name == "postgresql"
        self._raw = engine.raw_connection()
        self._conn: Any = self._raw.driver_connection
        assert self._conn is not None
        if self.is_postgres:
            self._conn.autocommit = True
            self._conn.execute("SET synchronous_commit = off")
            # The statements below are planned once: re-planning the array UPDATE on every
            # call (the default for parameters the planner cares about) doubles its cost.
            self._conn.execute("SET plan_cache_mode = force_generic_plan")
            self.p = "%s"
            # The marker is the one statement per message: run it through libpq directly
            # (a prepared statement, no Python cursor machinery): ~20 us instead of ~60 us.
            self._pq = self._conn.pgconn
            for name, statement in ((_MARK_NAME, _MARK_PG), (_MARK_MANY_NAME, _MARK_MANY_PG)):
                prepared = self._pq.prepare(name, statement)
                if prepared.status != _COMMAND_OK and b"already exists" not in (
                    prepared.error_message or b""
                ):
                    raise RuntimeError(prepared.error_message.decode("utf-8", "replace"))
            self._worker_bytes = worker.encode()
        else:
            self.p = "?"  # sqlite3 runs in autocommit mode (isolation_level None in db.py)
        self._cur = self._conn.cursor()
        # Acceptances committed in the background (PostgreSQL): the ids in flight, and the
        # ids confirmed ours once the result came back, until the caller takes them.
        self._in_flight: list[int] | None = None
        self._confirmed: set[int] | None = None

    def close(self) -> None:
        self._sync()
        try:
            if self.is_postgres:
                self._conn.execute("RESET synchronous_commit")
                self._conn.execute("RESET plan_cache_mode")
                self._conn.autocommit = False
            self._cur.close()
        finally:
            self._raw.close()

    def _t(self, value: dt.datetime | None) -> Any:
        if value is None or self.is_postgres:
            return value
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.p) if self.is_postgres else statement

    def record_accepted(
        self, delivery_id: int, message_id: str, response: str, now: dt.datetime
    ) -> bool:
        """The server took this message (250): commit it now. False if the row is not ours
        any more (our claim was recovered by the sweep): the caller must stop."""
        if self.is_postgres:
            return delivery_id in self.record_accepted_many([(delivery_id, message_id, response)])
        self._sync()
        stamp = self._t(now)
        self._cur.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = ?, message_id = ?, smtp_code = 250, "
            "smtp_response = ?, attempts = attempts + 1, next_attempt_at = NULL, updated_at = ? "
            "WHERE id = ? AND claimed_by = ? AND status = 'sending'",
            (stamp, message_id, reply_text(response), stamp, delivery_id, self.worker),
        )
        return bool(self._cur.rowcount == 1)

    def record_accepted_many(self, accepted: Sequence[tuple[int, str, str]]) -> set[int]:
        """Commit several acceptances ``(delivery_id, message_id, response)`` in one statement;
        returns the ids that were still ours (a missing id means our claim was recovered)."""
        if not accepted:
            return set()
        if not self.is_postgres:
            self._sync()
            now = dt.datetime.now(dt.UTC)
            return {
                delivery_id
                for delivery_id, message_id, response in accepted
                if self.record_accepted(delivery_id, message_id, response, now)
            }
        self.submit_accepted(accepted)
        return self.take_confirmed(wait=True) or set()

    # -- acceptances in the background ------------------------------------------------------

    def submit_accepted(self, accepted: Sequence[tuple[int, str, str]]) -> None:
        """Start committing acceptances without waiting; ``take_confirmed`` gives the ids that
        were still ours. One submission at a time; any other write waits for it first."""
        self._sync()
        if self._confirmed is not None:
            raise RuntimeError("take_confirmed() the previous submission first")
        if not self.is_postgres:
            self._confirmed = self.record_accepted_many(accepted)
            return
        if len(accepted) == 1:  # the plain statement costs the server less than the array one
            delivery_id, message_id, response = accepted[0]
            name, params = (
                _MARK_NAME,
                [
                    message_id.encode(),
                    reply_text(response).encode("utf-8", "replace"),
                    str(delivery_id).encode(),
                    self._worker_bytes,
                ],
            )
        else:
            name, params = (
                _MARK_MANY_NAME,
                [
                    ("{" + ",".join(str(a[0]) for a in accepted) + "}").encode(),
                    pg_text_array([a[1] for a in accepted]),
                    pg_text_array([reply_text(a[2]) for a in accepted]),
                    self._worker_bytes,
                ],
            )
        self._pq.send_query_prepared(name, params)
        while self._pq.flush():
            pass
        self._in_flight = [a[0] for a in accepted]

    def fileno(self) -> int:
        """The database socket, readable when a submission's result arrives (-1: none)."""
        return int(self._pq.socket) if self._in_flight is not None else -1

    def take_confirmed(self, *, wait: bool) -> set[int] | None:
        """The ids of the last submission that were ours; None while it is still running."""
        if self._in_flight is not None:
            if not wait:
                self._pq.consume_input()
                if self._pq.is_busy():
                    return None
            self._sync()
        confirmed, self._confirmed = self._confirmed, None
        return confirmed

    def _sync(self) -> None:
        """Finish a submission in flight (its result is kept for ``take_confirmed``)."""
        if self._in_flight is None:
            return
        ids, self._in_flight = self._in_flight, None
        confirmed: set[int] = set()
        error: bytes | None = None
        while (result := self._pq.get_result()) is not None:
            if result.status == _TUPLES_OK:
                confirmed.update(int(result.get_value(i, 0)) for i in range(result.ntuples))
            elif result.status == _COMMAND_OK:
                if result.command_tuples == 1:
                    confirmed.add(ids[0])
            else:
                error = result.error_message
        if error is not None:
            raise RuntimeError(error.decode("utf-8", "replace"))
        self._confirmed = confirmed

    def is_claimed(self, delivery_id: int) -> bool:
        """Whether this row is still ours and unsent (the sweep may have recovered it)."""
        self._sync()
        self._cur.execute(
            self._sql(
                "SELECT 1 FROM deliveries WHERE id = ? AND claimed_by = ? AND status = 'sending'"
            ),
            (delivery_id, self.worker),
        )
        return self._cur.fetchone() is not None

    def record(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        *,
        code: int | None,
        response: str,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None = None,
        is_policy_rejection: bool = False,
        count_attempt: bool = True,
    ) -> bool:
        """Write one refusal, deferral or unknown outcome at once; False when the row was not
        ours any more (our claim was recovered)."""
        self._sync()
        self._cur.execute(
            self._sql(
                "UPDATE deliveries SET status = ?, smtp_code = ?, smtp_response = ?, "
                "next_attempt_at = ?, is_policy_rejection = ?, attempts = attempts + ?, "
                "updated_at = ? WHERE id = ? AND claimed_by = ? AND status = 'sending'"
            ),
            (
                status.value,
                code,
                reply_text(response, 2000),
                self._t(next_attempt_at),
                is_policy_rejection,
                1 if count_attempt else 0,
                self._t(now),
                delivery_id,
                self.worker,
            ),
        )
        return bool(self._cur.rowcount == 1)

    def release(
        self,
        delivery_ids: Sequence[int],
        *,
        status: DeliveryStatus,
        next_attempt_at: dt.datetime | None,
        now: dt.datetime,
    ) -> None:
        """Give rows back unsent (queued, or cancelled when the send was cancelled)."""
        self._sync()
        if not delivery_ids:
            return
        marks = ", ".join([self.p] * len(delivery_ids))
        self._cur.execute(
            self._sql("UPDATE deliveries SET status = ?, next_attempt_at = ?, updated_at = ? ")  # noqa: S608
            + f"WHERE id IN ({marks}) AND claimed_by = {self.p} AND status = 'sending'",
            (status.value, self._t(next_attempt_at), self._t(now), *delivery_ids, self.worker),
        )

    def heartbeat(self, send_id: int, now: dt.datetime) -> None:
        """Keep a long batch's claim fresh so that recovery leaves it alone."""
        self._sync()
        self._cur.execute(
            self._sql(
                "UPDATE deliveries SET claimed_at = ? "
                "WHERE send_id = ? AND status = 'sending' AND claimed_by = ?"
            ),
            (self._t(now), send_id, self.worker),
        )

    def touch_send(self, send_id: int, now: dt.datetime) -> None:
        """Note that this send is being worked on (the sweep restarts quiet sends)."""
        self._sync()
        self._cur.execute(
            self._sql("UPDATE sends SET last_claim_at = ? WHERE id = ?"), (self._t(now), send_id)
        )

    def send_status(self, send_id: int) -> str | None:
        self._sync()
        self._cur.execute(self._sql("SELECT status FROM sends WHERE id = ?"), (send_id,))
        row = self._cur.fetchone()
        return str(row[0]) if row else None

    def suppress(self, address_hash: str, address: str, note: str, now: dt.datetime) -> None:
        """A hard bounce: add the address to the suppression list (kept if already there)."""
        self._sync()
        self._cur.execute(
            self._sql(
                "INSERT INTO suppressions (address_hash, address, reason, note, created_at) "
                "VALUES (?, ?, 'hard_bounce', ?, ?) ON CONFLICT (address_hash) DO NOTHING"
            ),
            (address_hash, address.strip().lower(), note[:2000], self._t(now)),
        )


# -- sweeps -------------------------------------------------------------------------------------


def _unfinished_sends() -> Any:
    """Sends whose rows can still be pending: sweeps look only there, by (send_id, status)."""
    return select(Send.id).where(Send.status != SendStatus.FINISHED)


def promote_due_deferred(session: Session, now: dt.datetime) -> int:
    """deferred -> queued once ``next_attempt_at`` has come."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.send_id.in_(_unfinished_sends()),
            Delivery.status == D.DEFERRED,
            Delivery.next_attempt_at <= now,
        )
        .values(status=D.QUEUED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Recovery:
    requeued: int
    unknown: int


def recover_stale_claims(session: Session, *, now: dt.datetime, timeout_seconds: int) -> Recovery:
    """Settle rows left in ``sending`` by a worker that died (see the module docstring)."""
    cutoff = now - dt.timedelta(seconds=timeout_seconds)
    stale = (
        Delivery.send_id.in_(_unfinished_sends()),
        Delivery.status == D.SENDING,
        Delivery.claimed_at < cutoff,
    )
    # One message per lane (SMTP connection) of each claim may have been handed over: the
    # lowest row still in ``sending`` of that lane (a lane sends its rows in id order).
    in_flight = (
        select(func.min(Delivery.id))
        .where(*stale)
        .group_by(Delivery.claimed_by, Delivery.claim_lane)
    )
    unknown = session.execute(
        update(Delivery)
        .where(*stale, Delivery.id.in_(in_flight))
        .values(
            status=D.UNKNOWN,
            attempts=Delivery.attempts + 1,
            smtp_response="worker lost while the message may have been in flight: outcome unknown",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    requeued = session.execute(
        update(Delivery)
        .where(*stale)
        .values(status=D.QUEUED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return Recovery(
        requeued=int(requeued.rowcount or 0),  # type: ignore[attr-defined]
        unknown=int(unknown.rowcount or 0),  # type: ignore[attr-defined]
    )


def has_pending(session: Session, send_id: int) -> bool:
    """Whether any row of the send is still queued, sending or deferred."""
    return (
        session.scalar(
            select(Delivery.id)
            .where(Delivery.send_id == send_id, Delivery.status.in_(PENDING_STATUSES))
            .limit(1)
        )
        is not None
    )


def has_due(session: Session, send_id: int, now: dt.datetime) -> bool:
    """Whether a batch claimed now would find anything."""
    return (
        session.scalar(
            select(Delivery.id)
            .where(
                Delivery.send_id == send_id,
                Delivery.status == D.QUEUED,
                (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now),
            )
            .limit(1)
        )
        is not None
    )
