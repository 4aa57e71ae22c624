"""The writes of one batch while it sends: fenced by its claim, durable, mostly autocommit.

Every statement names the batch's claim and checks, in the same statement, that the claim
was not recovered (``recovered_at IS NULL``) and that the row is still ``sending`` under it,
so a worker whose claim was taken cannot overwrite anyone; a write that finds nothing tells
the batch to stop. Status guards come from ``ledger.DELIVERY_MACHINE``. Commits are durable
(the server's ``synchronous_commit`` default): an acceptance the database confirmed survives
a crash of the database server, so the lane may send its next final dot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from select import select as wait_readable
from typing import Any

from sqlalchemy.engine import Engine

from distributor.audience.models import SuppressionReason
from distributor.audience.services import ADD_IF_ABSENT, suppression_row
from distributor.delivery.ledger import DELIVERY_MACHINE, SEND_MACHINE, UNCLAIMED_STATUSES
from distributor.delivery.models import DeliveryStatus, SendStatus

_SENDING = {DeliveryStatus.SENDING}
_FENCE = "EXISTS (SELECT 1 FROM delivery_claims c WHERE c.id = {claim} AND c.recovered_at IS NULL)"


def _unclaim(status: DeliveryStatus) -> str:
    """A move into queued or deferred lets go of the claim (``ledger.UNCLAIMED_STATUSES``)."""
    return "claim_id = NULL, " if status in UNCLAIMED_STATUSES else ""


def acceptance_sql(*, many: bool) -> str:
    """The acceptance (sending -> sent) of one row, or of several through ``unnest``; its
    status guard comes from the machine, so the statement cannot exist without the move."""
    guard = DELIVERY_MACHINE.sql_guard(DeliveryStatus.SENT, _SENDING, column="d.status")
    fence = _FENCE.format(claim="$4::bigint")
    if not many:
        return (
            f"UPDATE deliveries AS d SET status = '{DeliveryStatus.SENT}', sent_at = clock_timestamp(), "
            "message_id = $1, smtp_code = 250, smtp_response = $2, attempts = d.attempts + 1, "
            "next_attempt_at = NULL, updated_at = clock_timestamp() "
            f"WHERE d.id = $3::bigint AND d.claim_id = $4::bigint AND {guard} AND {fence}"
        )
    return (
        f"UPDATE deliveries AS d SET status = '{DeliveryStatus.SENT}', sent_at = clock_timestamp(), "
        "message_id = v.message_id, smtp_code = 250, smtp_response = v.response, "
        "attempts = d.attempts + 1, next_attempt_at = NULL, updated_at = clock_timestamp() "
        "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, message_id, response) "
        f"WHERE d.id = v.id AND d.claim_id = $4::bigint AND {guard} AND {fence} RETURNING d.id"
    )


# The acceptance is the one statement per message: prepared once, run through libpq directly.
_MARK_NAME = b"distributor_delivery_accepted_v2"
_MARK_PG = acceptance_sql(many=False).encode()
_MARK_MANY_NAME = b"distributor_delivery_accepted_many_v2"
_MARK_MANY_PG = acceptance_sql(many=True).encode()
# The same acceptance as plain SQL (tests run it inside a transaction of their own).
ACCEPT_MANY_SQL = _MARK_MANY_PG.decode()
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


def _sqlite_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class ProgressWriter:
    """Autocommit writes of one batch (its own database connection): refusals as they happen,
    accepted rows in bulk and in the background, heartbeats, rows put back; all fenced by the
    claim."""

    def __init__(self, engine: Engine, claim_id: int) -> None:
        self.claim_id = claim_id
        self.is_postgres = engine.dialect.name == "postgresql"
        self._raw = engine.raw_connection()
        self._conn: Any = self._raw.driver_connection
        assert self._conn is not None
        if self.is_postgres:
            self._conn.autocommit = True
            # The statements below are planned once: re-planning the array UPDATE on every
            # call (the default for parameters the planner cares about) doubles its cost.
            self._conn.execute("SET plan_cache_mode = force_generic_plan")
            self.p = "%s"
            self.now = "clock_timestamp()"
            self._pq = self._conn.pgconn
            for name, statement in ((_MARK_NAME, _MARK_PG), (_MARK_MANY_NAME, _MARK_MANY_PG)):
                prepared = self._pq.prepare(name, statement)
                if prepared.status != _COMMAND_OK and b"already exists" not in (
                    prepared.error_message or b""
                ):
                    raise RuntimeError(prepared.error_message.decode("utf-8", "replace"))
            self._claim_bytes = str(claim_id).encode()
        else:
            self.p = "?"  # sqlite3 runs in autocommit mode (isolation_level None in db.py)
            self.now = "dist_now()"
            self._conn.create_function("dist_now", 0, _sqlite_now)
        self._cur = self._conn.cursor()
        # Acceptances committed in the background (PostgreSQL): the ids in flight, and the
        # ids confirmed ours once the result came back, until the caller takes them.
        self._in_flight: list[int] | None = None
        self._confirmed: set[int] | None = None
        self._record_sql: dict[DeliveryStatus, str] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):  # callers settle what they hold separately
            self._sync()
        try:
            if self.is_postgres:
                self._conn.execute("RESET plan_cache_mode")
                self._conn.autocommit = False
            self._cur.close()
        except Exception:
            self._raw.invalidate()
        finally:
            self._raw.close()

    def _t(self, value: dt.datetime | None) -> Any:
        if value is None or self.is_postgres:
            return value
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def _sql(self, statement: str) -> str:
        """``?`` placeholders, ``{now}`` (the database's clock) and ``{fence}`` (the claim
        check, one more ``?`` for the claim id) for this backend."""
        statement = statement.replace("{fence}", _FENCE.format(claim="?"))
        return statement.replace("{now}", self.now).replace("?", self.p)

    def _run(self, statement: str, params: Sequence[Any]) -> int:
        self._sync()
        self._cur.execute(self._sql(statement), tuple(params))
        return int(self._cur.rowcount or 0)

    # -- acceptances --------------------------------------------------------------------------

    def record_accepted(self, delivery_id: int, message_id: str, response: str) -> bool:
        """The server took this message (250): commit it now. False if the row is not ours
        any more (our claim was recovered by the sweep): the caller must stop."""
        return delivery_id in self.record_accepted_many([(delivery_id, message_id, response)])

    def record_accepted_many(self, accepted: Sequence[tuple[int, str, str]]) -> set[int]:
        """Commit several acceptances ``(delivery_id, message_id, response)`` in one statement;
        returns the ids that were still ours (a missing id means our claim was recovered)."""
        if not accepted:
            return set()
        self.submit_accepted(accepted)
        return self.take_confirmed(wait=True) or set()

    def submit_accepted(self, accepted: Sequence[tuple[int, str, str]]) -> None:
        """Start committing acceptances without waiting; ``take_confirmed`` gives the ids that
        were still ours. One submission at a time; any other write waits for it first."""
        self._sync()
        if self._confirmed is not None:
            raise RuntimeError("take_confirmed() the previous submission first")
        if not self.is_postgres:
            confirmed = set()
            for delivery_id, message_id, response in accepted:
                rows = self._run(
                    f"UPDATE deliveries SET status = '{DeliveryStatus.SENT}', sent_at = {{now}}, "
                    "message_id = ?, smtp_code = 250, smtp_response = ?, "
                    "attempts = attempts + 1, next_attempt_at = NULL, updated_at = {now} "
                    "WHERE id = ? AND claim_id = ? "
                    f"AND {DELIVERY_MACHINE.sql_guard(DeliveryStatus.SENT, _SENDING)} AND {{fence}}",
                    (message_id, reply_text(response), delivery_id, self.claim_id, self.claim_id),
                )
                if rows == 1:
                    confirmed.add(delivery_id)
            self._confirmed = confirmed
            return
        if len(accepted) == 1:  # the plain statement costs the server less than the array one
            delivery_id, message_id, response = accepted[0]
            name, params = (
                _MARK_NAME,
                [
                    message_id.encode(),
                    reply_text(response).encode("utf-8", "replace"),
                    str(delivery_id).encode(),
                    self._claim_bytes,
                ],
            )
        else:
            name, params = (
                _MARK_MANY_NAME,
                [
                    ("{" + ",".join(str(a[0]) for a in accepted) + "}").encode(),
                    pg_text_array([a[1] for a in accepted]),
                    pg_text_array([reply_text(a[2]) for a in accepted]),
                    self._claim_bytes,
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
            self._sync(is_read=not wait)
        confirmed, self._confirmed = self._confirmed, None
        return confirmed

    def _sync(self, *, is_read: bool = False) -> None:
        """Finish a submission in flight (its result is kept for ``take_confirmed``);
        ``is_read``: the caller has just read the socket and libpq holds the whole result."""
        if self._in_flight is None:
            return
        ids, self._in_flight = self._in_flight, None
        confirmed: set[int] = set()
        error: bytes | None = None
        pq = self._pq
        if not is_read:
            pq.consume_input()
        while pq.is_busy():
            # Wait in select(), which lets other threads run; libpq's own wait would not.
            wait_readable([pq.socket], [], [], 1.0)
            pq.consume_input()
        while (result := pq.get_result()) is not None:
            if result.status == _TUPLES_OK:
                confirmed.update(int(result.get_value(i, 0)) for i in range(result.ntuples))
            elif result.status == _COMMAND_OK:
                if result.command_tuples == 1:
                    confirmed.add(ids[0])
            else:
                error = result.error_message or b"connection lost"
        if error is not None:
            raise ConnectionError(error.decode("utf-8", "replace"))
        self._confirmed = confirmed

    # -- other outcomes ------------------------------------------------------------------------

    def is_claimed(self, delivery_id: int) -> bool:
        """Whether this row is still ours and unsent (the sweep may have recovered it)."""
        self._sync()
        self._cur.execute(
            self._sql(
                "SELECT 1 FROM deliveries WHERE id = ? AND claim_id = ? "
                f"AND status = '{DeliveryStatus.SENDING}' AND {{fence}}"
            ),
            (delivery_id, self.claim_id, self.claim_id),
        )
        return self._cur.fetchone() is not None

    def _record_statement(self, status: DeliveryStatus) -> str:
        statement = self._record_sql.get(status)
        if statement is None:
            guard = DELIVERY_MACHINE.sql_guard(status, _SENDING)
            statement = (
                f"UPDATE deliveries SET status = '{status}', {_unclaim(status)}"
                "smtp_code = ?, smtp_response = ?, "
                "next_attempt_at = ?, is_policy_rejection = ?, attempts = attempts + ?, "
                f"updated_at = {{now}} WHERE id = ? AND claim_id = ? AND {guard} AND {{fence}}"
            )
            self._record_sql[status] = statement
        return statement

    def record(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        *,
        code: int | None,
        response: str,
        next_attempt_at: dt.datetime | None = None,
        is_policy_rejection: bool = False,
        count_attempt: bool = True,
    ) -> bool:
        """Write one refusal, deferral or in-doubt outcome at once; False when the row was
        not ours any more (our claim was recovered)."""
        return (
            self._run(
                self._record_statement(status),
                (
                    code,
                    reply_text(response, 2000),
                    self._t(next_attempt_at),
                    is_policy_rejection,
                    1 if count_attempt else 0,
                    delivery_id,
                    self.claim_id,
                    self.claim_id,
                ),
            )
            == 1
        )

    def put_back(
        self,
        delivery_ids: Sequence[int],
        *,
        status: DeliveryStatus,
        next_attempt_at: dt.datetime | None,
        note: str = "",
        code: int | None = None,
    ) -> int:
        """Put back rows never handed over (queued, or cancelled when the send was); ``code``
        and ``note``: the reply that sent them back, when there was one."""
        if not delivery_ids:
            return 0
        guard = DELIVERY_MACHINE.sql_guard(status, _SENDING)
        total = 0
        for start in range(0, len(delivery_ids), 1000):
            chunk = list(delivery_ids[start : start + 1000])
            marks = ", ".join([self.p] * len(chunk))
            total += self._run(
                f"UPDATE deliveries SET status = '{status}', claim_id = NULL, "
                "next_attempt_at = ?, smtp_response = CASE WHEN ? = '' THEN smtp_response ELSE ? END, "
                "smtp_code = COALESCE(CAST(? AS INTEGER), smtp_code), "
                f"updated_at = {{now}} WHERE id IN ({marks}) AND claim_id = ? AND {guard} "
                "AND {fence}",
                (
                    self._t(next_attempt_at),
                    note,
                    note,
                    code,
                    *chunk,
                    self.claim_id,
                    self.claim_id,
                ),
            )
        return total

    def settle_late(
        self, delivery_id: int, status: DeliveryStatus, *, response: str, message_id: str = ""
    ) -> bool:
        """Recovery made this row of our claim ``in_doubt`` while we held its outcome: write
        what we know (a 250 we got, a refusal, or that its dot never went out)."""
        guard = DELIVERY_MACHINE.sql_guard(status, {DeliveryStatus.IN_DOUBT})
        sent = status is DeliveryStatus.SENT
        return (
            self._run(
                f"UPDATE deliveries SET status = '{status}', {_unclaim(status)}smtp_response = ?, "
                "message_id = CASE WHEN ? = '' THEN message_id ELSE ? END, "
                f"sent_at = CASE WHEN ? THEN {{now}} ELSE sent_at END, "
                f"smtp_code = CASE WHEN ? THEN 250 ELSE smtp_code END, updated_at = {{now}} "
                f"WHERE id = ? AND claim_id = ? AND {guard}",
                (
                    reply_text(response, 2000),
                    message_id,
                    message_id,
                    sent,
                    sent,
                    delivery_id,
                    self.claim_id,
                ),
            )
            == 1
        )

    # -- the claim and the send ---------------------------------------------------------------

    def heartbeat(self) -> bool:
        """Tell recovery this batch is alive (the database's clock); False: the claim was
        recovered and the batch must stop."""
        return (
            self._run(
                "UPDATE delivery_claims SET heartbeat_at = {now} "
                "WHERE id = ? AND recovered_at IS NULL",
                (self.claim_id,),
            )
            == 1
        )

    def end_claim(self, send_id: int) -> bool:
        """Every row of the claim is settled: recovery has nothing to look at here. A claim
        that still has a row in ``sending`` (the batch lost track of one) stays open, so
        recovery settles that row once the heartbeat stops."""
        return (
            self._run(
                "UPDATE delivery_claims SET ended_at = {now} WHERE id = ? "
                "AND recovered_at IS NULL AND NOT EXISTS (SELECT 1 FROM deliveries d "
                f"WHERE d.send_id = ? AND d.status = '{DeliveryStatus.SENDING}' AND d.claim_id = ?)",
                (self.claim_id, send_id, self.claim_id),
            )
            == 1
        )

    def touch_send(self, send_id: int) -> None:
        """Note that this send is being worked on (the sweep restarts quiet sends)."""
        self._run("UPDATE sends SET last_claim_at = {now} WHERE id = ?", (send_id,))

    def send_status(self, send_id: int) -> str | None:
        self._sync()
        self._cur.execute(self._sql("SELECT status FROM sends WHERE id = ?"), (send_id,))
        row = self._cur.fetchone()
        return str(row[0]) if row else None

    def pause_send(self, send_id: int, reason: str) -> bool:
        """The relay refuses us whatever the recipient (e.g. our envelope sender): pause the
        send and say why. Release status stays ``sending`` (paused is a sending release)."""
        guard = SEND_MACHINE.sql_guard(SendStatus.PAUSED, {SendStatus.RUNNING})
        return (
            self._run(
                f"UPDATE sends SET status = '{SendStatus.PAUSED}', paused_at = {{now}}, "
                f"pause_reason = ? WHERE id = ? AND {guard}",
                (reply_text(reason, 2000), send_id),
            )
            == 1
        )

    def suppress(self, address: str, reason: SuppressionReason, note: str) -> None:
        """A hard bounce at RCPT or the final dot: add the address to the suppression list as
        ``audience.services.suppress`` would (its row and its rule, an entry already there
        is kept), on this connection: autocommit, no ORM session on the hot path."""
        if reason not in ADD_IF_ABSENT:
            raise ValueError(f"{reason} needs audience.services.suppress and a session")
        row = suppression_row(address, reason, note=note[:2000])
        self._run(
            f"INSERT INTO suppressions ({', '.join(row)}, created_at) "
            f"VALUES ({', '.join('?' * len(row))}, {{now}}) "
            "ON CONFLICT (address_hash) DO NOTHING",
            tuple(row.values()),
        )
