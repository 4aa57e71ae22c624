"""security: suppression lift records, single-use confirm links, staff session records,
login throttle and TOTP columns on users, release owners

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

SUPPRESSION_REASONS = (
    "hard_bounce",
    "soft_bounce",
    "complaint",
    "unsubscribed_all",
    "do_not_contact",
    "erased",
)


def upgrade() -> None:
    op.create_table(
        "suppression_lifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(*SUPPRESSION_REASONS, name="suppressionreason", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("suppressed_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_by_id", sa.Integer(), nullable=True),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("lifted_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lifted_by_id"],
            ["users.id"],
            name=op.f("fk_suppression_lifts_lifted_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_lifts")),
    )
    with op.batch_alter_table("suppression_lifts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suppression_lifts_address_hash"), ["address_hash"], unique=False
        )
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_staff_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_sessions_token_hash")),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sessions_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_login_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("locked_until", distributor.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "password_changed_at", distributor.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_releases_owner_id_users"),
            "users",
            ["owner_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Each existing release belongs to whoever wrote it.
    op.execute("UPDATE releases SET owner_id = created_by_id")
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirmed_at", distributor.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_releases_owner_id_users"), type_="foreignkey")
        batch_op.drop_column("owner_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in (
            "totp_last_step",
            "totp_secret",
            "password_changed_at",
            "locked_until",
            "failed_login_count",
        ):
            batch_op.drop_column(column)
    op.drop_table("staff_sessions")
    op.drop_table("suppression_lifts")
