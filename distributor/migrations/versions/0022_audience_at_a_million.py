"""audience at a million: the staff list's keyset order

Revision ID: 0022
Revises: 0016

``ix_journalists_name_address`` (name, email_normalized) is the staff list's order: a page
is an index walk from the previous page's last row (keyset pagination), so a late page costs
what the first one does.
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journalists", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journalists_name_address", ["name", "email_normalized"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("journalists", schema=None) as batch_op:
        batch_op.drop_index("ix_journalists_name_address")
