"""bounces and complaints: inbound messages, bounces, complaints

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=300), nullable=False),
        sa.Column("envelope_from", sa.String(length=320), nullable=False),
        sa.Column("envelope_to", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column(
            "classification",
            sa.Enum(
                "pending",
                "bounce",
                "delay",
                "complaint",
                "auto_reply",
                "other",
                "unrecognised",
                name="classification",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("received_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("raw_purged_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_inbound_messages_dedupe_key")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_messages_classification"), ["classification"], unique=False
        )
        batch_op.create_index("ix_inbound_messages_received_at", ["received_at"], unique=False)

    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_message_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "kind",
            sa.Enum("hard", "soft", "policy", name="bouncekind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("status_code", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("remote_mta", sa.String(length=255), nullable=False),
        sa.Column("matched_by", sa.String(length=20), nullable=False),
        sa.Column("is_suppressing", sa.Boolean(), nullable=False),
        sa.Column("received_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_bounces_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_bounces_inbound_message_id_inbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sa.UniqueConstraint(
            "inbound_message_id", "email", name=op.f("uq_bounces_inbound_message_id_email")
        ),
    )
    with op.batch_alter_table("bounces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bounces_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_index("ix_bounces_email_received", ["email", "received_at"], unique=False)
        batch_op.create_index("ix_bounces_received_at", ["received_at"], unique=False)

    op.create_table(
        "complaints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_message_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("feedback_type", sa.String(length=40), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.Column("matched_by", sa.String(length=20), nullable=False),
        sa.Column("is_suppressing", sa.Boolean(), nullable=False),
        sa.Column("received_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_complaints_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_complaints_inbound_message_id_inbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
        sa.UniqueConstraint(
            "inbound_message_id", "email", name=op.f("uq_complaints_inbound_message_id_email")
        ),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaints_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index("ix_complaints_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_received_at")
        batch_op.drop_index(batch_op.f("ix_complaints_delivery_id"))

    op.drop_table("complaints")
    with op.batch_alter_table("bounces", schema=None) as batch_op:
        batch_op.drop_index("ix_bounces_received_at")
        batch_op.drop_index("ix_bounces_email_received")
        batch_op.drop_index(batch_op.f("ix_bounces_delivery_id"))

    op.drop_table("bounces")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_received_at")
        batch_op.drop_index(batch_op.f("ix_inbound_messages_classification"))

    op.drop_table("inbound_messages")
