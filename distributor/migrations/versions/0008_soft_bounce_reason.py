"""suppressions: a reason of their own for repeated soft bounces

Revision ID: 0008
Revises: 0007

The reason column is a VARCHAR(32) without a CHECK constraint (non-native enum), so the new
value needs no schema change; this revision relabels the soft-bounce suppressions recorded as
hard bounces before it (their note says "bounced messages within").
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE suppressions SET reason = 'soft_bounce' "
        "WHERE reason = 'hard_bounce' AND note LIKE '% bounced messages within %'"
    )


def downgrade() -> None:
    op.execute("UPDATE suppressions SET reason = 'hard_bounce' WHERE reason = 'soft_bounce'")
