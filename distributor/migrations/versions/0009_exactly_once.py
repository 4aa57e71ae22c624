"""exactly once: claims with heartbeats on the database's clock, in-doubt rows, self-pausing sends

Revision ID: 0009
Revises: 0008

* ``delivery_claims``: one row per batch claim; ``heartbeat_at`` (the database's clock) says
  the batch is alive, ``recovered_at`` fences it out once recovery took it.
* ``deliveries.claim_id``: the claim holding a row. Rows left ``sending`` by workers of an
  earlier version get a claim each (per worker), stamped with their old ``claimed_at``, so the
  sweep recovers them as before.
* the ``unknown`` status becomes ``in_doubt`` (the status column has no CHECK constraint).
* ``sends.pause_reason``: why a send paused itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("claimed_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recovered_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name=op.f("fk_delivery_claims_send_id_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_claims")),
    )
    with op.batch_alter_table("delivery_claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_claims_live",
            ["heartbeat_at"],
            unique=False,
            postgresql_where=sa.text("recovered_at IS NULL AND ended_at IS NULL"),
            sqlite_where=sa.text("recovered_at IS NULL AND ended_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_delivery_claims_send_id"), ["send_id"], unique=False)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pause_reason", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE deliveries SET status = 'in_doubt' WHERE status = 'unknown'")
    op.execute(
        "INSERT INTO delivery_claims (send_id, worker, claimed_at, heartbeat_at) "
        "SELECT send_id, COALESCE(claimed_by, ''), MIN(claimed_at), MIN(claimed_at) "
        "FROM deliveries WHERE status = 'sending' AND claimed_at IS NOT NULL "
        "GROUP BY send_id, COALESCE(claimed_by, '')"
    )
    op.execute(
        "UPDATE deliveries SET claim_id = (SELECT c.id FROM delivery_claims c "
        "WHERE c.send_id = deliveries.send_id AND c.worker = COALESCE(deliveries.claimed_by, '')) "
        "WHERE status = 'sending'"
    )


def downgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'unknown' WHERE status = 'in_doubt'")
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.drop_column("pause_reason")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("claim_id")
    with op.batch_alter_table("delivery_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_claims_send_id"))
        batch_op.drop_index("ix_delivery_claims_live")
    op.drop_table("delivery_claims")
