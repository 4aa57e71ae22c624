"""Who gets a release: computed and frozen with set-based SQL, never row by row in Python.

A journalist matches when they have a confirmed subscription to one of the release's beats or
sit on one of its media lists. Erased, paused and suppressed journalists are left out
(suppressions are keyed by the sha256 of the lower-cased address, as in
``distributor.audience.services.address_hash``); digest-mode journalists get a DIGEST row that
the daily digest picks up. Each journalist gets one row, whatever number of beats matched.
While a release is under embargo, journalists whose embargo standing (``embargo_standings``,
see ``distributor.embargo``) is "not allowed", or "probation" until a later date, are left
out too, and counted by that reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Integer, bindparam, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from distributor.db import UTCDateTime, utcnow
from distributor.delivery.signals import recipients_frozen
from distributor.releases.models import Release

# Why a matched journalist is left out of an embargoed send (the audience breakdown shows them).
EMBARGO_NOT_ALLOWED = "embargo_not_allowed"
EMBARGO_PROBATION = "embargo_probation"


def _sha256_hex(value: str | None) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def prepare_sqlite(session: Session) -> None:
    """Give SQLite the sha256 function PostgreSQL has built in (per connection, cheap)."""
    if is_postgres(session):
        return
    raw = session.connection().connection.driver_connection
    raw.create_function("dist_sha256", 1, _sha256_hex, deterministic=True)  # type: ignore[union-attr]


def address_hash_sql(session: Session, column: str) -> str:
    """SQL for sha256(lower(address)) as hex, matching ``audience.services.address_hash``."""
    if is_postgres(session):
        return f"encode(sha256(convert_to(lower(trim({column})), 'UTF8')), 'hex')"
    return f"dist_sha256({column})"


def _matched_cte(session: Session) -> str:
    if is_postgres(session):
        beats = "string_agg(beat, ', ' ORDER BY beat)"
        lists = "string_agg(list, ', ' ORDER BY list)"
    else:
        beats = "group_concat(beat, ', ')"
        lists = "group_concat(list, ', ')"
    suppressed = (
        "j.erased_at IS NOT NULL OR j.is_paused OR EXISTS (SELECT 1 FROM suppressions sup "  # noqa: S608
        f"WHERE sup.address_hash = {address_hash_sql(session, 'j.email_normalized')})"
    )
    # Only constant SQL fragments are interpolated here, never values.
    return f"""
    WITH matched AS (
        SELECT s.journalist_id AS jid, b.name AS beat, CAST(NULL AS VARCHAR(200)) AS list
        FROM subscriptions s
        JOIN release_beats rb ON rb.beat_id = s.beat_id AND rb.release_id = :release_id
        JOIN beats b ON b.id = s.beat_id
        WHERE s.status = 'confirmed'
        UNION ALL
        SELECT m.journalist_id AS jid, CAST(NULL AS VARCHAR(200)) AS beat, ml.name AS list
        FROM media_list_members m
        JOIN release_media_lists rml
          ON rml.media_list_id = m.media_list_id AND rml.release_id = :release_id
        JOIN media_lists ml ON ml.id = m.media_list_id
    ),
    per_journalist AS (
        SELECT jid, {beats} AS beats, {lists} AS lists FROM matched GROUP BY jid
    ),
    base_classified AS (
        SELECT j.id AS jid, j.email AS email, j.email_normalized AS email_normalized,
               p.beats AS beats, p.lists AS lists,
               CASE WHEN {suppressed} THEN 'suppressed'
                    WHEN j.delivery_mode = 'daily_digest' THEN 'digest'
                    ELSE 'now' END AS kind
        FROM per_journalist p JOIN journalists j ON j.id = p.jid
    ),
    classified AS (
        SELECT c.jid, c.email, c.email_normalized, c.beats, c.lists,
               CASE WHEN c.kind = 'suppressed' OR NOT :is_embargoed THEN c.kind
                    WHEN es.standing = 'not_allowed' THEN 'embargo_not_allowed'
                    WHEN es.standing = 'probation' AND es.probation_until > :now
                         THEN 'embargo_probation'
                    ELSE c.kind END AS kind
        FROM base_classified c LEFT JOIN embargo_standings es ON es.journalist_id = c.jid
    )
    """  # noqa: S608


@dataclass(frozen=True)
class AudienceCounts:
    total: int
    digest: int
    suppressed: int
    by_beat: list[tuple[str, int]]
    by_list: list[tuple[str, int]]
    embargo_not_allowed: int = 0  # left out: embargo access not allowed
    embargo_probation: int = 0  # left out: on embargo probation


def _embargo_params(session: Session, release_id: int, now: dt.datetime) -> dict[str, object]:
    embargo_until = session.scalar(select(Release.embargo_until).where(Release.id == release_id))
    return {"is_embargoed": embargo_until is not None and embargo_until > now, "now": now}


def _cte_params() -> list[BindParameter[Any]]:
    return [bindparam("is_embargoed", type_=Boolean()), bindparam("now", type_=UTCDateTime())]


def count_audience(
    session: Session, release_id: int, now: dt.datetime | None = None
) -> AudienceCounts:
    """The exact numbers a send would freeze right now, with a breakdown by beat and list."""
    prepare_sqlite(session)
    cte = _matched_cte(session)
    params = {"release_id": release_id, **_embargo_params(session, release_id, now or utcnow())}
    included = "c.kind IN ('now', 'digest')"
    kinds: dict[str, int] = dict(
        session.execute(
            text(cte + "SELECT kind, count(*) FROM classified GROUP BY kind").bindparams(  # noqa: S608
                *_cte_params()
            ),
            params,
        ).all()
    )
    by_beat = session.execute(
        text(
            cte + "SELECT m.beat, count(DISTINCT m.jid) FROM matched m "  # noqa: S608
            "JOIN classified c ON c.jid = m.jid "
            f"WHERE {included} AND m.beat IS NOT NULL "
            "GROUP BY m.beat ORDER BY m.beat"
        ).bindparams(*_cte_params()),
        params,
    ).all()
    by_list = session.execute(
        text(
            cte + "SELECT m.list, count(DISTINCT m.jid) FROM matched m "  # noqa: S608
            "JOIN classified c ON c.jid = m.jid "
            f"WHERE {included} AND m.list IS NOT NULL "
            "GROUP BY m.list ORDER BY m.list"
        ).bindparams(*_cte_params()),
        params,
    ).all()
    return AudienceCounts(
        total=int(kinds.get("now", 0)),
        digest=int(kinds.get("digest", 0)),
        suppressed=int(kinds.get("suppressed", 0)),
        by_beat=[(str(name), int(n)) for name, n in by_beat],
        by_list=[(str(name), int(n)) for name, n in by_list],
        embargo_not_allowed=int(kinds.get(EMBARGO_NOT_ALLOWED, 0)),
        embargo_probation=int(kinds.get(EMBARGO_PROBATION, 0)),
    )


def freeze_recipients(session: Session, *, send_id: int, release_id: int, now: dt.datetime) -> int:
    """Insert one delivery row per recipient in one statement; returns the rows added.

    Journalists who already have a row for this release (a cancelled send started again)
    keep it: the unique (release_id, journalist_id) makes this safe to run twice.
    """
    prepare_sqlite(session)
    if is_postgres(session):
        verp = "replace(CAST(gen_random_uuid() AS TEXT), '-', '')"
        domain = "split_part(c.email_normalized, '@', 2)"
    else:
        verp = "lower(hex(randomblob(16)))"
        domain = "substr(c.email_normalized, instr(c.email_normalized, '@') + 1)"
    insert = f"""
        INSERT INTO deliveries (
            send_id, release_id, journalist_id, email, recipient_domain, status,
            matched_beats, matched_lists, attempts, verp_token, smtp_response,
            is_policy_rejection, created_at, updated_at
        )
        SELECT :send_id, :release_id, c.jid, c.email, {domain},
               CASE WHEN c.kind = 'digest' THEN 'digest' ELSE 'queued' END,
               COALESCE(c.beats, ''), COALESCE(c.lists, ''), 0, {verp}, '',
               :false, :now, :now
        FROM classified c
        WHERE c.kind IN ('now', 'digest')
        ON CONFLICT (release_id, journalist_id) DO NOTHING
        """  # noqa: S608
    statement = text(_matched_cte(session) + insert).bindparams(
        bindparam("send_id", type_=Integer()),
        bindparam("release_id", type_=Integer()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("is_embargoed", type_=Boolean()),
        bindparam("false"),
    )
    params: dict[str, object] = {"send_id": send_id, "release_id": release_id, "false": False}
    params.update(_embargo_params(session, release_id, now))
    result = session.execute(statement, params)
    added = int(result.rowcount)  # type: ignore[attr-defined]
    if added < 0:  # the sqlite3 module does not count rows of a WITH ... INSERT
        added = int(session.execute(text("SELECT changes()")).scalar_one())
    recipients_frozen.send(release_id, session=session, send_id=send_id, now=now)
    return added


def suppressed_ids(session: Session, delivery_ids: list[int]) -> set[int]:
    """The deliveries among ``delivery_ids`` whose address is now suppressed."""
    if not delivery_ids:
        return set()
    prepare_sqlite(session)
    statement = text(
        "SELECT d.id FROM deliveries d WHERE d.id IN :ids AND d.email IS NOT NULL AND EXISTS "  # noqa: S608
        "(SELECT 1 FROM suppressions s WHERE s.address_hash = "
        f"{address_hash_sql(session, 'd.email')})"
    ).bindparams(bindparam("ids", expanding=True, type_=Integer()))
    return {int(row[0]) for row in session.execute(statement, {"ids": delivery_ids})}
