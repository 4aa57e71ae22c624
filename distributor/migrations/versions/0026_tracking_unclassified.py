"""tracking: a partial index on the events no flush has classified yet

Revision ID: 0026
Revises: 0025

``classify_pending`` runs after every flush (every 5 s) and looked for ``classified_at IS
NULL`` by reading the whole ``tracking_events`` table; the partial index holds only the
handful of events of the last flush, so its cost no longer grows with every event stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UNCLASSIFIED = "classified_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tracking_events_unclassified",
            ["delivery_id", "kind"],
            unique=False,
            postgresql_where=sa.text(UNCLASSIFIED),
            sqlite_where=sa.text(UNCLASSIFIED),
        )


def downgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_unclassified")
