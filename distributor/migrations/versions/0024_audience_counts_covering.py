"""audience at a million, second pass: the breakdown reads its few special journalists from
one covering partial index

Revision ID: 0024
Revises: 0023

``ix_journalists_not_now`` (partial: erased, paused or digest readers) now carries what the
freeze's rules read of those journalists (``erased_at``, ``is_paused``, ``delivery_mode``), so
the send page's audience breakdown classifies them by an index-only scan (PostgreSQL;
SQLite has no INCLUDE and keeps the plain partial index).
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


NOT_NOW = "erased_at IS NOT NULL OR is_paused OR delivery_mode = 'daily_digest'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_journalists_not_now")
    op.execute(
        "CREATE INDEX ix_journalists_not_now ON journalists (id) "
        f"INCLUDE (erased_at, is_paused, delivery_mode) WHERE {NOT_NOW}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_journalists_not_now")
    op.execute(f"CREATE INDEX ix_journalists_not_now ON journalists (id) WHERE {NOT_NOW}")
