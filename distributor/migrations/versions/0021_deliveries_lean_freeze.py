"""deliveries: no foreign key on release_id (the send's key already ties a row to its release)

Every delivery row names its send (``send_id``, foreign key, ON DELETE CASCADE) and the send
names its release (``sends.release_id``, unique, foreign key, ON DELETE CASCADE), so deleting a
release still deletes its deliveries. The second key on ``release_id`` only made every frozen
row pay one more referential check: a third of the foreign-key work of freezing a send.

Revision ID: 0021
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_release_id_releases", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_deliveries_release_id_releases",
            "releases",
            ["release_id"],
            ["id"],
            ondelete="CASCADE",
        )
