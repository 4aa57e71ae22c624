"""Bulk inserts for CSV imports: one statement per chunk, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from distributor.audience.models import (
    DeliveryMode,
    ImportJob,
    Journalist,
    Outlet,
    Subscription,
    SubscriptionStatus,
    media_list_members,
)
from distributor.db import utcnow

if TYPE_CHECKING:
    from distributor.audience.dry_run import Analysis

CHUNK_SIZE = 5000
# PostgreSQL's COPY path: rows per COPY and merge (a few fixed statements per chunk).
COPY_CHUNK_SIZE = 50_000

ProgressCallback = Callable[[int], None]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def beat_ids_of(job: ImportJob) -> list[int]:
    return [int(b) for b in job.beat_ids.split(",") if b]


def bulk_insert(
    session: Session,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    constants: dict[str, Any] | None = None,
    returning: tuple[str, ...] = (),
    skip_conflicts: bool = True,
) -> list[Any]:
    """``INSERT ... ON CONFLICT DO NOTHING`` for many rows with the same keys, in one statement.

    On PostgreSQL the rows travel as one array per column and ``unnest`` turns them back into
    rows (``constants`` are sent once): one short statement per chunk, where a multi-row VALUES
    list costs the driver more to build and parse than the server needs to insert it.
    On SQLite an executemany.
    """
    if not rows:
        return []
    constants = constants or {}
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        stmt = sqlite.insert(table)
        if skip_conflicts:
            stmt = stmt.on_conflict_do_nothing()
        full = [{**row, **constants} for row in rows] if constants else rows
        if returning:
            with_returning = stmt.returning(*(table.c[c] for c in returning))
            return list(session.execute(with_returning, full).all())
        session.execute(stmt, full)
        return []
    if dialect.name != "postgresql":
        raise RuntimeError(f"bulk import does not support the {dialect.name} dialect")

    def bound(column_name: str, value: Any) -> Any:
        processor = table.c[column_name].type.bind_processor(dialect)
        return processor(value) if processor is not None else value

    def sql_type(column_name: str) -> str:
        # Column names and types come from our own table definitions, never from input.
        return str(table.c[column_name].type.compile(dialect=dialect))

    params: dict[str, Any] = {}
    arrays, scalars = [], []
    for index, column_name in enumerate(rows[0]):
        params[f"a{index}"] = [bound(column_name, row[column_name]) for row in rows]
        arrays.append(f"CAST(:a{index} AS {sql_type(column_name)}[])")
    for index, (column_name, value) in enumerate(constants.items()):
        params[f"c{index}"] = bound(column_name, value)
        scalars.append(f"CAST(:c{index} AS {sql_type(column_name)})")
    columns = [*rows[0], *constants]
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - see sql_type
        f"SELECT u.*{''.join(', ' + s for s in scalars)} FROM unnest({', '.join(arrays)}) AS u"
    )
    if skip_conflicts:
        statement += " ON CONFLICT DO NOTHING"
    if returning:
        statement += f" RETURNING {', '.join(returning)}"
    result = session.execute(text(statement), params)
    return list(result.all()) if returning else []


@dataclass
class ImportCounts:
    created: int = 0
    existing: int = 0
    subscriptions: int = 0
    list_members: int = 0


def import_rows(
    session: Session,
    job: ImportJob,
    analysis: Analysis,
    *,
    progress: ProgressCallback | None = None,
    chunk_size: int | None = None,
) -> ImportCounts:
    """Bulk-insert the analysed rows. Flushes only: the caller's transaction holds it all."""
    if session.get_bind().dialect.name == "postgresql":
        return copy_rows(
            session, job, analysis, progress=progress, chunk_size=chunk_size or COPY_CHUNK_SIZE
        )
    chunk_size = chunk_size or CHUNK_SIZE
    now = utcnow()
    counts = ImportCounts(existing=len(analysis.existing_ids))

    outlet_names = {r["outlet"].lower(): r["outlet"] for r in analysis.rows if r.get("outlet")}
    outlet_ids: dict[str, int] = {}
    if outlet_names:
        known: dict[str, int] = dict(
            session.execute(select(func.lower(Outlet.name), Outlet.id)).all()
        )
        missing = [name for key, name in outlet_names.items() if key not in known]
        for chunk in chunks(missing, chunk_size):
            bulk_insert(
                session,
                Outlet.__table__,
                [{"name": name, "website": "", "country": ""} for name in chunk],
            )
        outlet_ids = dict(session.execute(select(func.lower(Outlet.name), Outlet.id)).all())

    new_ids: dict[str, int] = {}
    done = 0
    for chunk in chunks(analysis.rows, chunk_size):
        params = [
            {
                "email": r["email"],
                "email_normalized": r["email"],
                "name": r.get("name", ""),
                "outlet_id": outlet_ids.get(r.get("outlet", "").lower()),
                "role": r.get("role", ""),
                "country": r.get("country", ""),
                "language": r.get("language", ""),
                "phone": r.get("phone", ""),
                "notes": r.get("notes", ""),
            }
            for r in chunk
        ]
        constants = {
            "delivery_mode": DeliveryMode.EACH_RELEASE,
            "is_paused": False,
            "is_tracking_allowed": True,
            "lawful_basis": job.lawful_basis,
            "created_at": now,
            "updated_at": now,
        }
        for journalist_id, address in bulk_insert(
            session,
            Journalist.__table__,
            params,
            constants=constants,
            returning=("id", "email_normalized"),
        ):
            new_ids[address] = journalist_id
        done += len(chunk)
        if progress is not None:
            progress(done)
    counts.created = len(new_ids)
    # Someone may have added an address between the dry run and now: it counts as existing.
    raced = [r["email"] for r in analysis.rows if r["email"] not in new_ids]
    for chunk in chunks(raced, 1000):
        analysis.existing_ids.update(
            session.execute(
                select(Journalist.email_normalized, Journalist.id).where(
                    Journalist.email_normalized.in_(chunk)
                )
            ).all()
        )
    counts.existing = len(analysis.existing_ids)

    beat_ids = beat_ids_of(job)
    if beat_ids:
        constants = {
            "status": SubscriptionStatus.CONFIRMED,
            "source": "import",
            "consent_at": now,
            "consent_method": f"import:{job.lawful_basis.value}",
            "consent_text_version": f"import #{job.id}",
            "confirmed_at": now,
            "created_at": now,
        }
        sub_rows = [
            {"journalist_id": journalist_id, "beat_id": beat_id}
            for journalist_id in new_ids.values()
            for beat_id in beat_ids
        ]
        for chunk in chunks(sub_rows, chunk_size):
            # The journalists are new in this very transaction: nothing can conflict, so a
            # plain INSERT spares PostgreSQL the speculative insertion.
            bulk_insert(
                session, Subscription.__table__, chunk, constants=constants, skip_conflicts=False
            )
        counts.subscriptions = len(sub_rows)

    if job.media_list_id is not None:
        member_rows = [
            {"media_list_id": job.media_list_id, "journalist_id": journalist_id}
            for journalist_id in [*new_ids.values(), *analysis.existing_ids.values()]
        ]
        for chunk in chunks(member_rows, chunk_size):
            bulk_insert(session, media_list_members, chunk)
        counts.list_members = len(member_rows)
    return counts


# -- PostgreSQL: COPY into a staging table, then set-based statements ---------------------------

STAGING_COLUMNS = ("email", "name", "outlet", "role", "country", "language", "phone", "notes")
_STAGING = "distributor_import_staging"

# Outlets named in the staged rows and not known yet (names compare case-insensitively).
_NEW_OUTLETS = f"""
INSERT INTO outlets (name, website, country)
SELECT DISTINCT ON (lower(s.outlet)) s.outlet, '', '' FROM {_STAGING} s
WHERE s.outlet <> ''
  AND NOT EXISTS (SELECT 1 FROM outlets o WHERE lower(o.name) = lower(s.outlet))
ORDER BY lower(s.outlet), s.outlet
ON CONFLICT DO NOTHING
"""  # noqa: S608 - a constant table name

# The staged journalists, their outlets, and their beats, in one statement: new addresses only
# (an address added since the dry run is skipped by ON CONFLICT and counted as existing).
_MERGE = f"""
WITH outlet_ids AS (
    SELECT DISTINCT ON (lower(name)) lower(name) AS key, id FROM outlets
    ORDER BY lower(name), id
),
added AS (
    INSERT INTO journalists (email, email_normalized, name, outlet_id, role, country, language,
        phone, notes, delivery_mode, is_paused, is_tracking_allowed, lawful_basis, created_at,
        updated_at)
    SELECT s.email, s.email, s.name, o.id, s.role, s.country, s.language, s.phone, s.notes,
           :delivery_mode, false, true, :lawful_basis, :now, :now
    FROM {_STAGING} s LEFT JOIN outlet_ids o ON o.key = lower(s.outlet) AND s.outlet <> ''
    ON CONFLICT DO NOTHING
    RETURNING id
),
subscribed AS (
    INSERT INTO subscriptions (journalist_id, beat_id, status, source, consent_at,
        consent_method, consent_text_version, confirmed_at, created_at)
    SELECT a.id, b.beat_id, :confirmed, 'import', :now, :method, :version, :now, :now
    FROM added a CROSS JOIN unnest(CAST(:beat_ids AS INTEGER[])) AS b(beat_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM subscribed)
"""  # noqa: S608 - a constant table name

# Every staged address (new, or added by someone else since the dry run) on the media list.
_STAGED_MEMBERS = f"""
INSERT INTO media_list_members (media_list_id, journalist_id)
SELECT :media_list_id, j.id FROM {_STAGING} s JOIN journalists j ON j.email_normalized = s.email
ON CONFLICT DO NOTHING
"""  # noqa: S608 - a constant table name


def copy_rows(
    session: Session,
    job: ImportJob,
    analysis: Analysis,
    *,
    progress: ProgressCallback | None = None,
    chunk_size: int = COPY_CHUNK_SIZE,
) -> ImportCounts:
    """The PostgreSQL import: each chunk of rows goes by COPY into a temporary staging table,
    then into the audience by a few set-based statements; all in the caller's transaction,
    so a failure anywhere rolls every chunk back (all-or-nothing as before).
    """
    now = utcnow()
    counts = ImportCounts()
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
        + ", ".join(f"{column} text NOT NULL" for column in STAGING_COLUMNS)
        + ") ON COMMIT DROP"
    )
    beat_ids = beat_ids_of(job)
    params = {
        "delivery_mode": DeliveryMode.EACH_RELEASE.value,
        "lawful_basis": job.lawful_basis.value,
        "now": now,
        "confirmed": SubscriptionStatus.CONFIRMED.value,
        "method": f"import:{job.lawful_basis.value}",
        "version": f"import #{job.id}",
        "beat_ids": beat_ids,
        "media_list_id": job.media_list_id,
    }
    done = 0
    for chunk in chunks(analysis.rows, chunk_size):
        connection.exec_driver_sql(f"TRUNCATE {_STAGING}")
        copy_sql = f"COPY {_STAGING} ({', '.join(STAGING_COLUMNS)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in chunk:
                copy.write_row([row.get(column, "") for column in STAGING_COLUMNS])
        connection.exec_driver_sql(f"ANALYZE {_STAGING}")
        session.execute(text(_NEW_OUTLETS))
        added, subscribed = session.execute(text(_MERGE), params).one()
        counts.created += int(added)
        counts.subscriptions += int(subscribed)
        if job.media_list_id is not None:
            session.execute(text(_STAGED_MEMBERS), params)
        done += len(chunk)
        if progress is not None:
            progress(done)
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_STAGING}")
    raced = len(analysis.rows) - counts.created
    counts.existing = len(analysis.existing_ids) + raced
    if job.media_list_id is not None:
        if analysis.existing_ids:
            session.execute(
                text(
                    "INSERT INTO media_list_members (media_list_id, journalist_id) "
                    "SELECT :media_list_id, u.id FROM unnest(CAST(:ids AS INTEGER[])) AS u(id) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"media_list_id": job.media_list_id, "ids": list(analysis.existing_ids.values())},
            )
        counts.list_members = len(analysis.rows) + len(analysis.existing_ids)
    return counts
