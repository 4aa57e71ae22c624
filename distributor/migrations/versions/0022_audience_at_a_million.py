"""audience at a million: the staff list's keyset order, the breakdown's small indexes

Revision ID: 0022
Revises: 0016

``ix_journalists_name_address`` (name, email_normalized) is the staff list's order: a page
is an index walk from the previous page's last row (keyset pagination), so a late page costs
what the first one does.

``ix_journalists_not_now`` (partial: erased, paused or digest readers) lets the send page's
audience breakdown find the few journalists the freeze's rules may not mail now without
reading every journalist; ``ix_journalists_address_hash`` (PostgreSQL) now carries the id,
so finding the suppressed journalists is an index-only scan.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


NOT_NOW = "erased_at IS NOT NULL OR is_paused OR delivery_mode = 'daily_digest'"


def upgrade() -> None:
    with op.batch_alter_table("journalists", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journalists_name_address", ["name", "email_normalized"], unique=False
        )
        batch_op.create_index(
            "ix_journalists_not_now",
            ["id"],
            unique=False,
            postgresql_where=sa.text(NOT_NOW),
            sqlite_where=sa.text(NOT_NOW),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_journalists_address_hash")
        op.execute(
            "CREATE INDEX ix_journalists_address_hash "
            "ON journalists (distributor_address_hash(email_normalized)) INCLUDE (id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_journalists_address_hash")
        op.execute(
            "CREATE INDEX ix_journalists_address_hash "
            "ON journalists (distributor_address_hash(email_normalized))"
        )
    with op.batch_alter_table("journalists", schema=None) as batch_op:
        batch_op.drop_index("ix_journalists_not_now")
        batch_op.drop_index("ix_journalists_name_address")
