"""delivery lanes and leaner delivery indexes

Revision ID: 0007
Revises: 0006

A batch spreads its rows over several SMTP connections ("lanes", one per recipient domain
group). Each lane has at most one message in doubt, so recovery needs the lane of every
claimed row to find it.

The (status, next_attempt_at) index goes: every row is updated twice on the send path and each
update paid for it, and the planner used it for the per-message acceptance UPDATE instead of
the primary key. Sweeps now go through (send_id, status, ...) for unfinished sends; digest rows
get a partial index of their own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_lane", sa.SmallInteger(), nullable=True))
        batch_op.drop_index("ix_deliveries_claim")
        batch_op.create_index(
            "ix_deliveries_digest",
            ["journalist_id"],
            unique=False,
            postgresql_where=sa.text("status = 'digest'"),
            sqlite_where=sa.text("status = 'digest'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_digest")
        batch_op.create_index("ix_deliveries_claim", ["status", "next_attempt_at"], unique=False)
        batch_op.drop_column("claim_lane")
