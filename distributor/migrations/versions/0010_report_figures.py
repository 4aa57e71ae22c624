"""reports: per-day counts of settled sends for the 30-day dashboard

Revision ID: 0010
Revises: 0009

The dashboard read every delivery of the last 30 days on each view (about 500,000 rows at
1M deliveries). A send whose messages can no longer change (finished two days ago, no digest
row waiting) is counted once per UTC day by a periodic set-based sweep; the dashboard reads
those few rows and counts only the unsettled sends live. No index is added to ``deliveries``:
the send path updates each row twice and pays for every index on it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_send_counts",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("counted_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name=op.f("fk_report_send_counts_send_id_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("send_id", name=op.f("pk_report_send_counts")),
    )
    op.create_table(
        "report_send_days",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("went_out", sa.Integer(), nullable=False),
        sa.Column("session_hard", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name=op.f("fk_report_send_days_send_id_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("send_id", "day", name=op.f("pk_report_send_days")),
    )


def downgrade() -> None:
    op.drop_table("report_send_days")
    op.drop_table("report_send_counts")
