"""Committed test data that other threads and processes can see, removed after the test.

Most tests run inside a savepoint that is rolled back. A test whose data must be seen by a
server thread, a worker process or a second connection commits for real through the ``live_db``
fixture (``tests/conftest.py``); afterwards every row it added is removed, and rows that were
there before it started stay. Every table has an integer ``id`` primary key that only grows,
except a few link tables, whose rows go with the rows they point at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.engine import Connection, Engine

from distributor.models import metadata


@dataclass(frozen=True)
class Marks:
    """The highest id of every table when a test started (0: the table was empty)."""

    highest: dict[str, int]


def mark(engine: Engine) -> Marks:
    """Where each table stands now: one query for all of them."""
    tables = [t for t in metadata.sorted_tables if "id" in t.c]
    query = select(
        *(
            select(func.coalesce(func.max(t.c.id), 0)).scalar_subquery().label(t.name)
            for t in tables
        )
    )
    with engine.connect() as conn:
        row = conn.execute(query).one()._mapping
    return Marks(highest={t.name: int(row[t.name]) for t in tables})


def _referrers(table: Table) -> set[Table]:
    return {
        t for t in metadata.sorted_tables if any(fk.column.table is table for fk in t.foreign_keys)
    }


def _truncatable(marks: Marks) -> set[Table]:
    """Tables that were empty, with every table that points at them also empty before."""
    empty = {t for t in metadata.sorted_tables if marks.highest.get(t.name, 0) == 0}
    changed = True
    while changed:
        changed = False
        for table in list(empty):
            if not _referrers(table) <= empty:
                empty.discard(table)
                changed = True
    return empty


def remove_rows_added_since(engine: Engine, marks: Marks) -> None:
    """Delete every row added after ``marks``, children first.

    On PostgreSQL the tables that were empty go in one TRUNCATE: deleting thousands of
    journalists row by row runs every foreign-key check once per row and takes half a minute.
    """
    with engine.begin() as conn:
        rest = list(metadata.sorted_tables)
        if conn.dialect.name == "postgresql":
            emptied = _truncatable(marks)
            if emptied:
                names = ", ".join(f'"{t.name}"' for t in sorted(emptied, key=lambda t: t.name))
                conn.execute(text("SET LOCAL lock_timeout = '60s'"))
                conn.execute(text(f"TRUNCATE {names}"))
            rest = [t for t in rest if t not in emptied]
        for table in reversed(rest):
            _delete_new_rows(conn, table, marks)


def _delete_new_rows(conn: Connection, table: Table, marks: Marks) -> None:
    if "id" in table.c:
        conn.execute(delete(table).where(table.c.id > marks.highest.get(table.name, 0)))
        return
    # A link table: its rows that point at a new row.
    for fk in table.foreign_keys:
        parent = fk.column.table
        if fk.column.name == "id" and parent.name in marks.highest:
            conn.execute(delete(table).where(fk.parent > marks.highest[parent.name]))
