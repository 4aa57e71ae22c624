"""deliveries updated in place: no index names the status; the queue is the unclaimed rows

Revision ID: 0023
Revises: 0022

Every message moves its row twice (queued -> sending by the claim, sending -> sent by the
acceptance). A move that changes a column some index names (its key or its WHERE) writes a
new entry in every index of the table; a move that changes none, with room on the page,
stays a heap-only tuple (HOT) and touches no index. ``status`` was in
``ix_deliveries_send_status`` and in the WHERE of ``ix_deliveries_digest``, so both moves
rewrote four index entries per message.

Now no index names ``status``: per-send reads use ``ix_deliveries_send`` (send_id,
next_attempt_at); the claim finds its rows in ``ix_deliveries_unclaimed`` (rows no batch
holds: ``claim_id IS NULL``), which the claim leaves by setting ``claim_id``; the rows of a
claim are found by ``ix_deliveries_claim`` (send_id, claim_id: an acceptance, which names its
rows by id and its claim, is never planned as a walk over the claim's rows); a digest reader's rows (never claimed) by
``ix_deliveries_digest``. The acceptance changes none of those columns, and ``fillfactor``
50 leaves the room on each page for its new row version: it is a HOT update.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UNCLAIMED = "claim_id IS NULL"
CLAIMED = "claim_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_send_status")
        batch_op.drop_index("ix_deliveries_digest")
        batch_op.create_index("ix_deliveries_send", ["send_id", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_deliveries_unclaimed",
            ["send_id", "next_attempt_at"],
            unique=False,
            postgresql_where=sa.text(UNCLAIMED),
            sqlite_where=sa.text(UNCLAIMED),
        )
        batch_op.create_index(
            "ix_deliveries_claim",
            ["send_id", "claim_id"],
            unique=False,
            postgresql_where=sa.text(CLAIMED),
            sqlite_where=sa.text(CLAIMED),
        )
        batch_op.create_index(
            "ix_deliveries_digest",
            ["journalist_id"],
            unique=False,
            postgresql_where=sa.text(UNCLAIMED),
            sqlite_where=sa.text(UNCLAIMED),
        )
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; existing pages fill up as they are rewritten.
        op.execute("ALTER TABLE deliveries SET (fillfactor = 50)")
    # Rows queued again before this revision may still name the claim that last held them.
    op.execute(
        "UPDATE deliveries SET claim_id = NULL "
        "WHERE status IN ('queued', 'deferred') AND claim_id IS NOT NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_digest")
        batch_op.drop_index("ix_deliveries_claim")
        batch_op.drop_index("ix_deliveries_unclaimed")
        batch_op.drop_index("ix_deliveries_send")
        batch_op.create_index(
            "ix_deliveries_digest",
            ["journalist_id"],
            unique=False,
            postgresql_where=sa.text("status = 'digest'"),
            sqlite_where=sa.text("status = 'digest'"),
        )
        batch_op.create_index(
            "ix_deliveries_send_status", ["send_id", "status", "next_attempt_at"], unique=False
        )
