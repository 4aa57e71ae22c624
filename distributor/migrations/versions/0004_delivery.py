"""delivery ledger

Revision ID: 0004
Revises: 0003

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "running",
                "paused",
                "cancelled",
                "finished",
                name="sendstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("scheduled_for", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("paused_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_claim_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_sends_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_sends_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
        sa.UniqueConstraint("release_id", name=op.f("uq_sends_release_id")),
    )
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sends_scheduled_for"), ["scheduled_for"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("recipient_domain", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sending",
                "sent",
                "deferred",
                "failed",
                "unknown",
                "cancelled",
                "digest",
                name="deliverystatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("matched_beats", sa.Text(), nullable=False),
        sa.Column("matched_lists", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("sent_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("verp_token", sa.String(length=64), nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("smtp_response", sa.Text(), nullable=False),
        sa.Column("is_policy_rejection", sa.Boolean(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_deliveries_journalist_id_journalists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_deliveries_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f("fk_deliveries_send_id_sends"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "release_id", "journalist_id", name=op.f("uq_deliveries_release_id_journalist_id")
        ),
        sa.UniqueConstraint("verp_token", name=op.f("uq_deliveries_verp_token")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_claim", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_deliveries_send_status", ["send_id", "status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "digest_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column("digest_date", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("sending", "sent", "failed", name="digeststatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("verp_token", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("release_ids", sa.Text(), nullable=False),
        sa.Column("smtp_response", sa.Text(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_digest_mails_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_mails")),
        sa.UniqueConstraint(
            "journalist_id", "digest_date", name=op.f("uq_digest_mails_journalist_id_digest_date")
        ),
        sa.UniqueConstraint("verp_token", name=op.f("uq_digest_mails_verp_token")),
    )


def downgrade() -> None:
    op.drop_table("digest_mails")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_send_status")
        batch_op.drop_index("ix_deliveries_claim")

    op.drop_table("deliveries")
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sends_scheduled_for"))

    op.drop_table("sends")
