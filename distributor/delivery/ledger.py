"""The delivery ledger: state machines, atomic claiming and the recovery of dead workers' rows.

Single rows move through ``move_delivery`` (which raises on an illegal move). Set-based moves,
raw SQL included, take their ``WHERE status ...`` guard from the machine (``sql_guard`` /
``guard``), so a move the machine does not allow cannot be written at all.

How a message is protected against loss and duplication. A batch drives a few SMTP
connections at once ("lanes"; a row's lane is fixed by its recipient domain when it is
claimed, and stored), and each lane sends its rows in id order:

1. claim: a ``delivery_claims`` row (the database's clock, never the worker's) and rows
   queued -> sending with its ``claim_id`` and their ``claim_lane``, committed BEFORE any SMTP.
2. the batch loop moves the claim's ``heartbeat_at`` every few seconds (``now()`` in SQL),
   also while it waits for connects and replies, whose timeouts are bounded for that reason.
3. each outcome is committed as soon as it is known, durably (no ``synchronous_commit=off``):
   a refusal at once; acceptances (250) of all lanes together in one statement, before any of
   those lanes sends its NEXT final dot (``progress.ProgressWriter``). Every write names the
   claim and checks in the same statement that the claim was not recovered (the fence).

So whenever a lane sends a final dot, every earlier row of that lane has its outcome in the
database and the claim was still ours a moment before. ``recover_stale_claims`` takes a claim
only when its heartbeat is ``DELIVERY_CLAIM_TIMEOUT_SECONDS`` old: it marks the claim
recovered and locks the claim's rows still ``sending`` in one statement (a worker's acceptance
in flight finishes first or finds the rows gone), then decides on that locked set: in each lane
the lowest such row may have had its final dot written and becomes ``in_doubt``; every later
one was never handed over and is queued again. A live worker that was fenced out can send at
most that one in-doubt row's dot per lane (its next write fails and it stops), and it records
what it learns about it afterwards (``settle_late``: a 250 it held turns the row ``sent``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from distributor.db import UTCDateTime, utcnow
from distributor.delivery.models import (
    Delivery,
    DeliveryClaim,
    DeliveryStatus,
    Send,
    SendStatus,
)
from distributor.statemachine import StateMachine

DELIVERY_MACHINE: StateMachine[DeliveryStatus] = StateMachine(
    "delivery",
    {
        DeliveryStatus.QUEUED: {DeliveryStatus.SENDING, DeliveryStatus.CANCELLED},
        # sending -> queued: put back unsent (rate limit, pause, relay trouble) or recovered,
        # never handed over.
        DeliveryStatus.SENDING: {
            DeliveryStatus.SENT,
            DeliveryStatus.DEFERRED,
            DeliveryStatus.FAILED,
            DeliveryStatus.IN_DOUBT,
            DeliveryStatus.QUEUED,
            DeliveryStatus.CANCELLED,
        },
        DeliveryStatus.DEFERRED: {DeliveryStatus.QUEUED, DeliveryStatus.CANCELLED},
        DeliveryStatus.FAILED: {DeliveryStatus.QUEUED},  # staff: retry failed
        # Staff decided to resend; or the worker that held it learned its outcome after
        # recovery had taken its claim (a 250 it held, a refusal, or it never sent the dot).
        DeliveryStatus.IN_DOUBT: {
            DeliveryStatus.QUEUED,
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
            DeliveryStatus.DEFERRED,
        },
        DeliveryStatus.CANCELLED: {DeliveryStatus.QUEUED},  # a cancelled send started again
        DeliveryStatus.DIGEST: {
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
            DeliveryStatus.CANCELLED,
        },  # the daily digest took it
    },
)


SEND_MACHINE: StateMachine[SendStatus] = StateMachine(
    "send",
    {
        SendStatus.SCHEDULED: {SendStatus.RUNNING, SendStatus.CANCELLED},
        SendStatus.RUNNING: {SendStatus.PAUSED, SendStatus.CANCELLED, SendStatus.FINISHED},
        SendStatus.PAUSED: {SendStatus.RUNNING, SendStatus.CANCELLED},
        SendStatus.FINISHED: {SendStatus.RUNNING},  # retry failed / resend in doubt reopens it
        SendStatus.CANCELLED: {
            SendStatus.RUNNING,
            SendStatus.SCHEDULED,
        },  # started or scheduled again
    },
)

FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.IN_DOUBT,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.DIGEST,
    }
)
PENDING_STATUSES = frozenset(
    {DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED}
)
# A row in these statuses belongs to no claim: every move into them writes ``claim_id`` NULL,
# which puts the row back in the queue index (``ix_deliveries_unclaimed``) where claims look.
# A row ``sending`` always names the open claim that holds it.
UNCLAIMED_STATUSES = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED})


def move_delivery(delivery: Delivery, target: DeliveryStatus) -> None:
    """Move one row, checking the state machine."""
    DELIVERY_MACHINE.check(delivery.status, target)
    delivery.status = target
    if target in UNCLAIMED_STATUSES:
        delivery.claim_id = None


def move_send(send: Send, target: SendStatus) -> None:
    SEND_MACHINE.check(send.status, target)
    send.status = target


def db_now(session_or_conn: Session | Connection) -> Any:
    """The database's clock in a statement (PostgreSQL ``now()``). SQLite runs on one host,
    whose clock is the only one there is."""
    bind = (
        session_or_conn if isinstance(session_or_conn, Connection) else session_or_conn.get_bind()
    )
    if bind.dialect.name == "postgresql":
        return func.now()
    return utcnow()


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


@dataclass
class Claim:
    """A batch's claim: its id (every write names it) and its rows, sorted by id."""

    id: int
    worker: str
    rows: list[ClaimedRow] = field(default_factory=list)
    # The hint for this worker's next claim of the send (``claim_batch``'s ``after``).
    after: int = 0


def lane_of(domain: str, lanes: int) -> int:
    """The lane of a recipient domain: the first byte of its SHA-256, modulo the lane count.
    The claim computes the same in SQL and stores it, so recovery can find each lane's row in
    doubt; all of a domain's rows share one lane, so a batch sends them over one connection, in
    id order."""
    return hashlib.sha256(domain.encode("utf-8")).digest()[0] % max(1, lanes)


_QUEUED_TO_SENDING = DELIVERY_MACHINE.sql_guard(
    DeliveryStatus.SENDING, {DeliveryStatus.QUEUED}, column="q.status"
)
_CLAIMED_TO_SENDING = DELIVERY_MACHINE.sql_guard(
    DeliveryStatus.SENDING, {DeliveryStatus.QUEUED}, column="d.status"
)

# The ids are picked from the queue index (``ix_deliveries_unclaimed``: rows no claim holds)
# and locked with SKIP LOCKED, in the index's own order (no sort; the planner is kept on the
# index, see ``index_walks``): first the retries that are due, then the fresh rows
# (``next_attempt_at`` NULL) in id order from just after ``:after``. A claim leaves the index
# by setting ``claim_id``, but its old entry stays until VACUUM; a claim that started at the
# front of the fresh rows would walk the entries of every row claimed before it (at 95% of a
# frozen million, 179 ms per claim of 1,000 instead of 30 ms). ``:upto`` bounds the walk back
# over the ids below ``:after`` when the rows after it ran short (a row put back there).
_PICK_DUE = f"""
SELECT q.id FROM deliveries q
WHERE q.send_id = :send_id AND q.claim_id IS NULL AND {_QUEUED_TO_SENDING}
  AND q.next_attempt_at <= now()
ORDER BY q.next_attempt_at, q.id
LIMIT :limit
FOR UPDATE SKIP LOCKED
"""
_PICK_FRESH = f"""
SELECT q.id FROM deliveries q
WHERE q.send_id = :send_id AND q.claim_id IS NULL AND {_QUEUED_TO_SENDING}
  AND q.next_attempt_at IS NULL AND q.id > :after AND q.id <= :upto
ORDER BY q.next_attempt_at, q.id
LIMIT :limit
FOR UPDATE SKIP LOCKED
"""
# The picked rows (locked by this transaction) are updated through the primary key
# (= ANY(:ids) keeps the planner from hashing the whole table), and the journalists are
# joined once for the whole batch. Times are the database's. The batch is sorted by id in
# Python.
_CLAIM_PG = f"""
WITH claimed AS (
    UPDATE deliveries AS d
    SET status = '{DeliveryStatus.SENDING}', claim_id = :claim, claimed_by = :worker, claimed_at = now(),
        first_attempt_at = COALESCE(d.first_attempt_at, now()), updated_at = now(),
        claim_lane = get_byte(sha256(convert_to(d.recipient_domain, 'UTF8')), 0) % :lanes
    WHERE d.id = ANY(:ids) AND {_CLAIMED_TO_SENDING}
    RETURNING d.id, d.journalist_id, d.email, d.recipient_domain, d.verp_token,
              d.matched_beats, d.attempts, d.first_attempt_at, d.claim_lane
)
SELECT c.id, c.journalist_id, c.email, c.recipient_domain, c.verp_token, c.matched_beats,
       c.attempts, c.first_attempt_at, COALESCE(j.name, ''),
       COALESCE(j.is_tracking_allowed, false), c.claim_lane
FROM claimed c LEFT JOIN journalists j ON j.id = c.journalist_id
"""
# No row id reaches this (ids are bigint at most 2**63 - 1).
_NO_UPPER_BOUND = 2**62

_INDEX_PLAN = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"
_DEFAULT_PLAN = "RESET enable_sort; RESET enable_bitmapscan"


@contextlib.contextmanager
def index_walks(conn: Connection) -> Iterator[None]:
    """Statements planned as walks of an index in its own order, never as a sort or a bitmap
    of every matching row: what the queue's look-ups need, whatever the statistics say (right
    after a freeze they say "empty"; a million rows sorted for each claim of 1,000 took 409
    ms instead of 10 ms). PostgreSQL's ``SET LOCAL`` ends with the transaction anyway; the
    settings are reset at once so the caller's next statements are planned as usual."""
    is_postgres = conn.dialect.name == "postgresql"
    if is_postgres:
        conn.exec_driver_sql(_INDEX_PLAN)
    yield
    if is_postgres:
        conn.exec_driver_sql(_DEFAULT_PLAN)


# SQLite has one writer at a time, so the sub-select cannot race; RETURNING needs 3.35.
_CLAIM_SQLITE = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.SENDING}', claim_id = :claim, claimed_by = :worker, claimed_at = :now,
    first_attempt_at = COALESCE(first_attempt_at, :now), updated_at = :now,
    claim_lane = dist_lane(recipient_domain, :lanes)
WHERE id IN (
    SELECT q.id FROM deliveries q
    WHERE q.send_id = :send_id AND q.claim_id IS NULL AND {_QUEUED_TO_SENDING}
      AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= :now)
      AND EXISTS (SELECT 1 FROM sends s WHERE s.id = :send_id AND s.status = 'running')
    ORDER BY q.id LIMIT :limit
)
RETURNING id, journalist_id, email, recipient_domain, verp_token, matched_beats, attempts,
          first_attempt_at, claim_lane
"""


def claim_batch(
    conn: Connection, *, send_id: int, worker: str, limit: int, lanes: int = 1, after: int = 0
) -> Claim | None:
    """Claim up to ``limit`` due queued rows of a running send (None: the send is not running;
    a claim without rows when nothing is due).

    ``after`` is a hint: the ``Claim.after`` of this worker's previous claim of the send. Fresh
    rows are looked for after it first, and below it only when those run short, so the result
    is the same set of rows a claim without the hint could take, in another order.

    Runs inside the caller's transaction; the caller commits before talking SMTP.
    """
    is_postgres = conn.dialect.name == "postgresql"
    if is_postgres:
        # A plain read, not a lock: claims must not queue behind each other on the send's row.
        # A pause that lands just after this read is seen by the batch within a second.
        status = conn.execute(select(Send.status).where(Send.id == send_id)).scalar()
        if status is not SendStatus.RUNNING:
            return None
    now = db_now(conn)
    claim_id = int(
        conn.execute(
            insert(DeliveryClaim)
            .values(send_id=send_id, worker=worker, claimed_at=now, heartbeat_at=now)
            .returning(DeliveryClaim.id)
        ).scalar_one()
    )
    columns = {"first_attempt_at": UTCDateTime()}
    next_after = after
    if is_postgres:
        ids, next_after = _pick_pg(conn, send_id=send_id, limit=limit, after=after)
        claim_sql = text(_CLAIM_PG).bindparams(
            bindparam("ids", type_=ARRAY(BigInteger())),
            bindparam("claim", type_=Integer()),
            bindparam("worker", type_=String()),
            bindparam("lanes", type_=Integer()),
        )
        values = {"ids": ids, "claim": claim_id, "worker": worker, "lanes": max(1, lanes)}
        rows = conn.execute(claim_sql.columns(**columns), values).all() if ids else []
        claimed = [ClaimedRow(*row) for row in rows]
    else:
        # SQLite: the write comes first, so the transaction takes the write lock at once (a
        # read-then-write transaction in WAL mode fails with "database is locked" instead of
        # waiting when another worker wrote in between).
        raw = conn.connection.driver_connection
        raw.create_function("dist_lane", 2, lane_of, deterministic=True)  # type: ignore[union-attr]
        params = {
            "send_id": send_id,
            "claim": claim_id,
            "worker": worker,
            "limit": limit,
            "lanes": max(1, lanes),
            "now": now,
        }
        binds: list[BindParameter[Any]] = [
            bindparam("send_id", type_=Integer()),
            bindparam("claim", type_=Integer()),
            bindparam("worker", type_=String()),
            bindparam("limit", type_=Integer()),
            bindparam("lanes", type_=Integer()),
            bindparam("now", type_=UTCDateTime()),
        ]
        rows = conn.execute(text(_CLAIM_SQLITE).bindparams(*binds).columns(**columns), params).all()
        if not rows:
            status = conn.execute(select(Send.status).where(Send.id == send_id)).scalar()
            if status is not SendStatus.RUNNING:
                conn.execute(delete(DeliveryClaim).where(DeliveryClaim.id == claim_id))
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
    if not claimed:
        # Nothing due: leave no claim behind (this transaction never shows it to anyone).
        conn.execute(delete(DeliveryClaim).where(DeliveryClaim.id == claim_id))
    claimed.sort(key=lambda r: r.id)
    return Claim(claim_id, worker, claimed, after=next_after)


def _pick_pg(conn: Connection, *, send_id: int, limit: int, after: int) -> tuple[list[int], int]:
    """Lock up to ``limit`` claimable rows (see ``_PICK_DUE``): their ids, and the hint for
    this worker's next claim (the highest fresh id taken after ``after``)."""
    next_after = after
    with index_walks(conn):
        due = conn.execute(text(_PICK_DUE), {"send_id": send_id, "limit": limit}).scalars()
        ids = [int(i) for i in due]
        # After the hint, then (only when that ran short) the ids below it.
        for low, high in ((after, _NO_UPPER_BOUND), (0, after)):
            wanted = limit - len(ids)
            if wanted <= 0 or high <= low:
                break
            bounds = {"send_id": send_id, "limit": wanted, "after": low, "upto": high}
            fresh = [int(i) for i in conn.execute(text(_PICK_FRESH), bounds).scalars()]
            if low == after and fresh:
                next_after = max(next_after, fresh[-1])
            ids += fresh
    return ids, next_after


# -- sweeps -------------------------------------------------------------------------------------


def _unfinished_sends() -> Any:
    """Sends whose rows can still be pending: sweeps look only there, by (send_id, status)."""
    return select(Send.id).where(Send.status != SendStatus.FINISHED)


def promote_due_deferred(session: Session, now: dt.datetime) -> int:
    """deferred -> queued once ``next_attempt_at`` has come. One statement per unfinished
    send, each a range of ``ix_deliveries_send`` (send_id, next_attempt_at): no index names
    the status, and one statement over all sends may be planned as a walk over every row."""
    total = 0
    for send_id in list(session.scalars(_unfinished_sends())):
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.send_id == send_id,
                DELIVERY_MACHINE.guard(
                    Delivery.status, DeliveryStatus.QUEUED, {DeliveryStatus.DEFERRED}
                ),
                Delivery.next_attempt_at <= now,
            )
            .values(status=DeliveryStatus.QUEUED, claim_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total


@dataclass(frozen=True)
class Recovery:
    requeued: int
    in_doubt: int
    claims: int = 0


RECOVERED_NOTE = (
    "in doubt: the worker carrying this message stopped (no heartbeat) while the message was "
    "next on its SMTP connection; its final dot may have been written, so it may have arrived"
)


def recover_stale_claims(session: Session, *, stale_seconds: float) -> Recovery:
    """Settle the rows of claims whose heartbeat stopped (see the module docstring).

    Everything happens in the caller's one transaction: the claims are taken (their fence
    set) and their rows still ``sending`` are locked before anything is decided, so an
    acceptance a live worker commits meanwhile is either seen or finds its rows gone.
    """
    now = db_now(session)
    cutoff = now - dt.timedelta(seconds=stale_seconds)
    claim_ids = list(
        session.scalars(
            select(DeliveryClaim.id)
            .where(
                DeliveryClaim.recovered_at.is_(None),
                DeliveryClaim.ended_at.is_(None),
                DeliveryClaim.heartbeat_at < cutoff,
            )
            .order_by(DeliveryClaim.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not claim_ids:
        return Recovery(0, 0)
    session.execute(
        update(DeliveryClaim)
        .where(DeliveryClaim.id.in_(claim_ids))
        .values(recovered_at=now)
        .execution_options(synchronize_session=False)
    )
    held = session.execute(
        select(Delivery.id, Delivery.claim_id, Delivery.claim_lane)
        .where(
            Delivery.send_id.in_(
                select(DeliveryClaim.send_id).where(DeliveryClaim.id.in_(claim_ids))
            ),
            Delivery.claim_id.in_(claim_ids),
            Delivery.status == DeliveryStatus.SENDING,
        )
        .order_by(Delivery.id)
        .with_for_update()
    ).all()
    # One message per lane (SMTP connection) of each claim may have been handed over: the
    # lowest row still in ``sending`` of that lane (a lane sends its rows in id order).
    seen: set[tuple[int | None, int | None]] = set()
    doubt: list[int] = []
    rest: list[int] = []
    for row_id, claim_id, lane in held:
        if (claim_id, lane) in seen:
            rest.append(row_id)
        else:
            seen.add((claim_id, lane))
            doubt.append(row_id)
    in_doubt = _move_ids(
        session,
        doubt,
        DeliveryStatus.IN_DOUBT,
        {DeliveryStatus.SENDING},
        attempts=Delivery.attempts + 1,
        smtp_response=RECOVERED_NOTE,
        updated_at=now,
    )
    requeued = _move_ids(
        session,
        rest,
        DeliveryStatus.QUEUED,
        {DeliveryStatus.SENDING},
        claim_id=None,
        updated_at=now,
    )
    return Recovery(requeued=requeued, in_doubt=in_doubt, claims=len(claim_ids))


def _move_ids(
    session: Session,
    ids: list[int],
    target: DeliveryStatus,
    sources: set[DeliveryStatus],
    **values: Any,
) -> int:
    total = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        result = session.execute(
            update(Delivery)
            .where(Delivery.id.in_(chunk), DELIVERY_MACHINE.guard(Delivery.status, target, sources))
            .values(status=target, **values)
            .execution_options(synchronize_session=False)
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total


def _pending_where(send_id: int) -> tuple[Any, Any]:
    """Where a send's pending rows are: in the queue index (rows no claim holds), or held by
    one of the send's open claims (rows ``sending``). Two index look-ups, never a walk over
    the rows already sent."""
    open_claims = select(DeliveryClaim.id).where(
        DeliveryClaim.send_id == send_id, DeliveryClaim.ended_at.is_(None)
    )
    unclaimed = (Delivery.send_id == send_id) & Delivery.claim_id.is_(None)
    held = (Delivery.send_id == send_id) & Delivery.claim_id.in_(open_claims)
    pending = Delivery.status.in_(PENDING_STATUSES)
    return unclaimed & pending, held & pending


def count_pending(session: Session, send_id: int) -> int:
    """How many rows of the send are still queued, sending or deferred."""
    return sum(
        int(session.scalar(select(func.count(Delivery.id)).where(where)) or 0)
        for where in _pending_where(send_id)
    )


# The queue index read backwards: while a send runs, its unclaimed fresh rows lie at the end
# of the index (highest ids), and its front holds the entries of every row claimed before,
# which stay until VACUUM. Forwards, "is there one?" walked them all: 117 ms at 95% of a
# frozen million, asked once per batch.
_QUEUE_FROM_THE_END = (Delivery.next_attempt_at.desc().nulls_first(), Delivery.id.desc())


def _first_of_queue(session: Session, where: Any) -> int | None:
    """The last row of the send's queue matching ``where``, read from the index's end."""
    query = select(Delivery.id).where(where).order_by(*_QUEUE_FROM_THE_END).limit(1)
    with index_walks(session.connection()):
        return session.scalar(query)


def has_pending(session: Session, send_id: int) -> bool:
    """Whether any row of the send is still queued, sending or deferred."""
    unclaimed, held = _pending_where(send_id)
    if _first_of_queue(session, unclaimed) is not None:
        return True
    return session.scalar(select(Delivery.id).where(held).limit(1)) is not None


def has_due(session: Session, send_id: int, now: dt.datetime) -> bool:
    """Whether a batch claimed now would find anything."""
    due = (
        (Delivery.send_id == send_id)
        & Delivery.claim_id.is_(None)
        & (Delivery.status == DeliveryStatus.QUEUED)
        & ((Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now))
    )
    return _first_of_queue(session, due) is not None
