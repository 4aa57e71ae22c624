"""deliveries: no foreign key on journalist_id; a trigger clears it when a journalist goes

Revision ID: 0029
Revises: 0028

The referential check of ``journalist_id`` took a key-share lock on every recipient's
journalist row while a send was frozen: it dirtied every page of ``journalists`` and was about
a third of the freeze (100,000 recipients, same machine, alternating: 3.2-3.3 s with it,
2.0-2.2 s without). What the key did besides, clearing the id of a deleted journalist's rows
(``ON DELETE SET NULL``), a ``BEFORE DELETE`` trigger on ``journalists`` now does. What it
guarded against, a journalist deleted while a freeze reads them, an advisory lock held by
both sides does (``distributor.audience.deletion``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION distributor_forget_journalist_deliveries() RETURNS trigger AS $$
BEGIN
    UPDATE deliveries SET journalist_id = NULL WHERE journalist_id = OLD.id;
    RETURN OLD;
END
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = (
    "CREATE TRIGGER journalists_forget_deliveries BEFORE DELETE ON journalists "
    "FOR EACH ROW EXECUTE FUNCTION distributor_forget_journalist_deliveries()"
)
_SQLITE_TRIGGER = (
    "CREATE TRIGGER journalists_forget_deliveries BEFORE DELETE ON journalists FOR EACH ROW "
    "BEGIN UPDATE deliveries SET journalist_id = NULL WHERE journalist_id = OLD.id; END"
)


@contextlib.contextmanager
def _rebuilding_deliveries() -> Iterator[None]:
    """SQLite rebuilds the table under a temporary name and renames it back; the trigger on
    ``sends`` (migration 0028) names ``deliveries``, and SQLite's own check of triggers would
    refuse the rename while the table is gone ("legacy_alter_table", SQLite's ALTER TABLE
    documentation). PostgreSQL alters the table in place."""
    is_sqlite = op.get_bind().dialect.name == "sqlite"
    if is_sqlite:
        op.execute("PRAGMA legacy_alter_table = ON")
    try:
        yield
    finally:
        if is_sqlite:
            op.execute("PRAGMA legacy_alter_table = OFF")


def upgrade() -> None:
    with _rebuilding_deliveries(), op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_journalist_id_journalists", type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    is_postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "DROP TRIGGER IF EXISTS journalists_forget_deliveries"
        + (" ON journalists" if is_postgres else "")
    )
    if is_postgres:
        op.execute("DROP FUNCTION IF EXISTS distributor_forget_journalist_deliveries()")
    # Rows of journalists deleted meanwhile would break the key: they lose the id first.
    op.execute(
        "UPDATE deliveries SET journalist_id = NULL WHERE journalist_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM journalists j WHERE j.id = deliveries.journalist_id)"
    )
    with _rebuilding_deliveries(), op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_deliveries_journalist_id_journalists",
            "journalists",
            ["journalist_id"],
            ["id"],
            ondelete="SET NULL",
        )
