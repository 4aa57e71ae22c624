"""a press office's day: staff mail log, notification opt-outs, organisation identity,
spokespeople, a featured release

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 14:54:09.568899
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_opt_outs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "submitted",
                "approved",
                "sent_back",
                "scheduled",
                "sent",
                name="notificationkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_opt_outs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_notification_opt_outs")),
    )
    op.create_table(
        "spokespeople",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=False),
        sa.Column("photo_key", sa.String(length=200), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_spokespeople_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spokespeople")),
    )
    with op.batch_alter_table("spokespeople", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spokespeople_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "staff_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "test_email",
                "release_test",
                "notification",
                name="staffmailkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued", "sent", "failed", name="staffmailstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column(
            "notification_kind",
            sa.Enum(
                "submitted",
                "approved",
                "sent_back",
                "scheduled",
                "sent",
                name="notificationkind",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_staff_mails_release_id_releases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_staff_mails_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_mails")),
    )
    with op.batch_alter_table("staff_mails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_mails_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_mails_release_id"), ["release_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_staff_mails_requested_by_id"), ["requested_by_id"], unique=False
        )

    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logo_key", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("brand_colour", sa.String(length=7), server_default="#0d5b74", nullable=False)
        )
        batch_op.add_column(sa.Column("boilerplate", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("social_links", sa.Text(), server_default="", nullable=False))

    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_featured", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("is_featured")

    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.drop_column("social_links")
        batch_op.drop_column("boilerplate")
        batch_op.drop_column("brand_colour")
        batch_op.drop_column("logo_key")

    with op.batch_alter_table("staff_mails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_mails_requested_by_id"))
        batch_op.drop_index(batch_op.f("ix_staff_mails_release_id"))
        batch_op.drop_index(batch_op.f("ix_staff_mails_created_at"))

    op.drop_table("staff_mails")
    with op.batch_alter_table("spokespeople", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spokespeople_organisation_id"))

    op.drop_table("spokespeople")
    op.drop_table("notification_opt_outs")
