"""confirmation requests: ``sent_at`` is the time the mail was asked for, ``requested_at``

Revision ID: 0025
Revises: 0024

The column always held when the journalist asked for the confirmation mail (the mail's own
hand-over to SMTP is ``mailed_at``); its name now says so, and so does its index's.
"""

from __future__ import annotations

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The index is made again after the rename: SQLite's batch mode copies the table, and an
    # index inside the same batch would name a column the copy does not have yet.
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_confirmation_requests_hash_sent")
        batch_op.alter_column("sent_at", new_column_name="requested_at")
    op.create_index(
        "ix_confirmation_requests_hash_requested",
        "confirmation_requests",
        ["address_hash", "requested_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_confirmation_requests_hash_requested", table_name="confirmation_requests")
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.alter_column("requested_at", new_column_name="sent_at")
    op.create_index(
        "ix_confirmation_requests_hash_sent",
        "confirmation_requests",
        ["address_hash", "sent_at"],
        unique=False,
    )
