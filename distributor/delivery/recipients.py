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

from distributor.audience.deletion import hold_off_deletions
from distributor.db import UTCDateTime, utcnow
from distributor.delivery.models import Delivery
from distributor.releases.models import Release
from distributor.signals import recipients_frozen

# Why a matched journalist is left out of an embargoed send (the audience breakdown shows them).
EMBARGO_NOT_ALLOWED = "embargo_not_allowed"
EMBARGO_PROBATION = "embargo_probation"
# What a matched journalist gets (``_kind_sql``): mailed now, in the digest, or left out.
NOW, DIGEST, SUPPRESSED = "now", "digest", "suppressed"
KINDS = (NOW, DIGEST, SUPPRESSED, EMBARGO_NOT_ALLOWED, EMBARGO_PROBATION)


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
    """SQL for sha256(lower(address)) as hex, matching ``audience.services.address_hash``.

    On PostgreSQL through ``distributor_address_hash`` (migration 0015): the same
    expression declared immutable, so ``journalists`` can carry an index on it.
    """
    if is_postgres(session):
        return f"distributor_address_hash({column})"
    return f"dist_sha256({column})"


def _excluded_sql(session: Session, suppressed_ids: str | None = None) -> str:
    """SQL true for a journalist ``j`` who must not be mailed: erased, paused or suppressed.

    The suppressed journalists are found from the suppressions' side (on PostgreSQL one probe
    of the address-hash index per suppression), never by hashing every matched address.
    ``suppressed_ids`` names a query of their ids already at hand (the breakdown's), else
    ``_suppressed_ids_sql`` finds them.
    """
    ids = suppressed_ids or _suppressed_ids_sql(session)
    return f"j.erased_at IS NOT NULL OR j.is_paused OR j.id IN ({ids})"


def _suppressed_ids_sql(session: Session) -> str:
    """SQL for the ids of the journalists whose address is suppressed."""
    return (
        "SELECT sj.id FROM suppressions sup JOIN journalists sj "  # noqa: S608
        f"ON {address_hash_sql(session, 'sj.email_normalized')} = sup.address_hash"
    )


def _kind_sql(session: Session, suppressed_ids: str | None = None) -> str:
    """SQL naming what a matched journalist ``j`` gets: suppressed, left out for the embargo,
    digest or now (``KINDS``).

    Needs ``es`` (the journalist's ``embargo_standings`` row, LEFT JOINed) and the bound
    parameters ``:is_embargoed`` and ``:now``: the standing counts only while the release is
    under embargo, and probation only until its date. ``suppressed_ids``: see
    ``_excluded_sql``.
    """
    return (
        f"CASE WHEN {_excluded_sql(session, suppressed_ids)} THEN '{SUPPRESSED}' "
        f"WHEN :is_embargoed AND es.standing = 'not_allowed' THEN '{EMBARGO_NOT_ALLOWED}' "
        "WHEN :is_embargoed AND es.standing = 'probation' AND es.probation_until > :now "
        f"THEN '{EMBARGO_PROBATION}' "
        f"WHEN j.delivery_mode = 'daily_digest' THEN '{DIGEST}' ELSE '{NOW}' END"
    )


# Who ``_kind_sql`` may class as anything but 'now', short of the suppressed and those with an
# embargo standing: erased, paused and digest readers (``ix_journalists_not_now``, partial,
# and covering what ``_kind_sql`` reads of them, migration 0024).
_MAYBE_NOT_NOW = "j.erased_at IS NOT NULL OR j.is_paused OR j.delivery_mode = 'daily_digest'"


def _special_sql(session: Session) -> str:
    """CTEs ``suppressed_ids`` and ``special`` (jid, kind): every journalist ``_kind_sql`` may
    class as anything but 'now', classified by it.

    A superset, each part found through a small index: ``_MAYBE_NOT_NOW``, the suppressed, and
    anyone with an embargo standing. The breakdown classifies only these where the freeze
    classifies every matched journalist, so this must cover every way ``_kind_sql`` says
    anything but 'now' (tests compare the breakdown with the freeze). The suppressed are found
    once (one probe of the address-hash index per suppression: a scalar subquery is never
    turned into a hash of every journalist's address) and serve both as candidates and in
    ``_kind_sql``; the candidates besides ``_MAYBE_NOT_NOW`` are looked up by id, never by
    reading every journalist.
    """
    kind = _kind_sql(session, "SELECT id FROM suppressed_ids")
    standings = "SELECT journalist_id FROM embargo_standings"
    if is_postgres(session):
        materialized = "MATERIALIZED "
        by_id = f"j.id = ANY(ARRAY(SELECT id FROM suppressed_ids UNION ALL {standings}))"  # noqa: S608
    else:
        materialized = ""
        by_id = f"j.id IN (SELECT id FROM suppressed_ids UNION ALL {standings})"  # noqa: S608
    # Only constant SQL fragments are interpolated here, never values.
    return f"""
    suppressed_ids AS {materialized}(
        SELECT (SELECT sj.id FROM journalists sj
                WHERE {address_hash_sql(session, "sj.email_normalized")} = sup.address_hash) AS id
        FROM suppressions sup
    ),
    special AS {materialized}(
        SELECT j.id AS jid, {kind} AS kind FROM journalists j
        LEFT JOIN embargo_standings es ON es.journalist_id = j.id
        WHERE {_MAYBE_NOT_NOW}
        UNION ALL
        SELECT j.id AS jid, {kind} AS kind FROM journalists j
        LEFT JOIN embargo_standings es ON es.journalist_id = j.id
        WHERE {by_id} AND NOT ({_MAYBE_NOT_NOW})
    )"""  # noqa: S608


# Who a release reaches before exclusions: one row per (journalist, beat) and per
# (journalist, media list) that matched.
_MATCHED = """
    matched AS (
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
    )"""


def _matched_cte(session: Session) -> str:
    if is_postgres(session):
        beats = "string_agg(beat, ', ' ORDER BY beat)"
        lists = "string_agg(list, ', ' ORDER BY list)"
    else:
        beats = "group_concat(beat, ', ')"
        lists = "group_concat(list, ', ')"
    # Only constant SQL fragments are interpolated here, never values.
    return f"""
    WITH {_MATCHED},
    per_journalist AS (
        SELECT jid, {beats} AS beats, {lists} AS lists FROM matched GROUP BY jid
    ),
    classified AS (
        SELECT j.id AS jid, j.email AS email, j.email_normalized AS email_normalized,
               p.beats AS beats, p.lists AS lists, {_kind_sql(session)} AS kind
        FROM per_journalist p JOIN journalists j ON j.id = p.jid
        LEFT JOIN embargo_standings es ON es.journalist_id = j.id
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
    """The exact numbers a send would freeze right now, with a breakdown by beat and list.

    One statement with the same rules as the freeze (``_MATCHED``, ``_kind_sql``), counted
    by kind, by beat and by media list.
    """
    prepare_sqlite(session)
    if is_postgres(session):
        # Planned as a big query it would be JIT-compiled first, which costs more than the
        # counting; and its hashes of a few hundred thousand ids fit in memory.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    # Who matched (``matched``, as the freeze reads it) is read twice, straight from the
    # indexes: once to count the journalists, by kind, and once to count them by beat and
    # list. Only the few journalists the freeze's rules (``_kind_sql``) may class as anything
    # but 'now' are classified (``special``, found through small indexes), so the hundreds of
    # thousands of matched journalists are never looked up one by one; distinct journalists
    # are counted by sorting ids, never with a hash of every one of them.
    # (journalist, beat) pairs are unique, so a beat's count is a plain count unless two of
    # the release's beats share a name; (journalist, list) pairs and list names are unique.
    shared_names = session.execute(
        text(
            "SELECT count(*) - count(DISTINCT b.name) FROM release_beats rb "
            "JOIN beats b ON b.id = rb.beat_id WHERE rb.release_id = :release_id"
        ),
        {"release_id": release_id},
    ).scalar_one()
    per_group = "count(DISTINCT m.jid)" if shared_names else "count(*)"
    matched = _MATCHED
    if is_postgres(session):
        # Read from the indexes at each use: cheaper than storing half a million rows.
        matched = _MATCHED.replace("matched AS (", "matched AS NOT MATERIALIZED (", 1)
    left_out = [kind for kind in KINDS if kind not in (NOW, DIGEST)]
    counted = [kind for kind in KINDS if kind != NOW]
    by_kind = "".join(
        f", count(DISTINCT m.jid) FILTER (WHERE sp.kind = '{kind}') AS k{i}"
        for i, kind in enumerate(counted)
    )
    unpivot = "".join(
        f"UNION ALL SELECT 'kind', '{kind}', k{i} FROM totals "  # noqa: S608 - constants
        for i, kind in enumerate(counted)
    )
    # Only constant SQL fragments are interpolated here, never values.
    statement = f"""
    WITH {matched}, {_special_sql(session)},
    totals AS (
        SELECT count(DISTINCT m.jid) AS everyone{by_kind}
        FROM matched m LEFT JOIN special sp ON sp.jid = m.jid
    )
    SELECT 'matched', '', everyone FROM totals {unpivot}
    UNION ALL
    SELECT CASE WHEN m.beat IS NULL THEN 'list' ELSE 'beat' END, COALESCE(m.beat, m.list),
           {per_group}
    FROM matched m WHERE NOT EXISTS (
        SELECT 1 FROM special sp WHERE sp.jid = m.jid
        AND sp.kind IN ({", ".join(f"'{kind}'" for kind in left_out)}))
    GROUP BY m.beat, m.list
    """  # noqa: S608
    params = {"release_id": release_id, **_embargo_params(session, release_id, now or utcnow())}
    kinds: dict[str, int] = {}
    by_beat: list[tuple[str, int]] = []
    by_list: list[tuple[str, int]] = []
    everyone = 0
    rows = session.execute(text(statement).bindparams(*_cte_params()), params)
    for group, name, n in rows:
        if group == "kind":
            kinds[str(name)] = int(n)
        elif group == "matched":
            everyone = int(n)
        elif group == "beat":
            by_beat.append((str(name), int(n)))
        else:
            by_list.append((str(name), int(n)))
    kinds[NOW] = everyone - sum(kinds.values())
    return AudienceCounts(
        total=kinds[NOW],
        digest=kinds.get(DIGEST, 0),
        suppressed=kinds.get(SUPPRESSED, 0),
        by_beat=sorted(by_beat),
        by_list=sorted(by_list),
        embargo_not_allowed=kinds.get(EMBARGO_NOT_ALLOWED, 0),
        embargo_probation=kinds.get(EMBARGO_PROBATION, 0),
    )


def freeze_recipients(session: Session, *, send_id: int, release_id: int, now: dt.datetime) -> int:
    """Insert one delivery row per recipient in one statement; returns the rows added.

    Journalists who already have a row for this release (a cancelled send started again)
    keep it. The caller holds the release's row lock (``services.start_send``), so a plain
    anti-join finds those rows; the unique (release_id, journalist_id) still stands behind it.
    A release with no row yet (every first send) skips the anti-join: a look-up in the
    unique index per frozen row, about a tenth of the freeze.
    No ``ON CONFLICT``: its speculative insertion costs every frozen row an extra pass over the
    arbiter index and an extra WAL record, even when nothing conflicts.
    """
    prepare_sqlite(session)
    if is_postgres(session):
        # The per-journalist aggregate sorts every matched row and the join hashes them: with
        # work_mem's 4 MB default both spill to temporary files (2 MB at 100,000 recipients,
        # ten times that at a million). A freeze big enough to be planned as costly would also
        # be JIT-compiled first, which costs more than it saves on one pass over the rows.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
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
        """  # noqa: S608
    # No journalist is deleted while this transaction runs (``journalist_id`` has no foreign
    # key to check that, migration 0029); taken before the statement below reads them.
    hold_off_deletions(session)
    has_rows = session.scalar(select(Delivery.id).where(Delivery.release_id == release_id).limit(1))
    if has_rows is not None:
        insert += """
          AND NOT EXISTS (
              SELECT 1 FROM deliveries x WHERE x.release_id = :release_id AND x.journalist_id = c.jid
          )
        """
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
