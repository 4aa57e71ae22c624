"""operators: when a send's batch tasks were last enqueued

Revision ID: 0015
Revises: 0014

``sends.dispatched_at`` lets the dispatch sweep tell a send whose batch tasks wait in the
broker (behind busy workers or a slow relay) from one whose tasks were lost, so it stops
enqueueing batch tasks every few seconds while long batches run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from distributor.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.drop_column("dispatched_at")
