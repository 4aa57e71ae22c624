"""audience: journalists, beats, subscriptions, media lists, suppressions

Revision ID: 0002
Revises: 0001

Also: confirmation request log, CSV import jobs and row errors, journalist merge log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "beats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("slug", sa.String(length=140), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beats")),
        sa.UniqueConstraint("slug", name=op.f("uq_beats_slug")),
    )
    op.create_table(
        "media_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_media_lists_name")),
    )
    op.create_table(
        "outlets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outlets")),
        sa.UniqueConstraint("name", name=op.f("uq_outlets_name")),
    )
    op.create_table(
        "journalists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_normalized", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("outlet_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=120), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=12), nullable=False),
        sa.Column("phone", sa.String(length=60), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column(
            "delivery_mode",
            sa.Enum(
                "each_release", "daily_digest", name="deliverymode", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("is_tracking_allowed", sa.Boolean(), nullable=False),
        sa.Column(
            "lawful_basis",
            sa.Enum(
                "consent", "legitimate_interest", name="lawfulbasis", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["outlet_id"],
            ["outlets.id"],
            name=op.f("fk_journalists_outlet_id_outlets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journalists")),
        sa.UniqueConstraint("email_normalized", name=op.f("uq_journalists_email_normalized")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column(
            "reason",
            sa.Enum(
                "hard_bounce",
                "complaint",
                "unsubscribed_all",
                "do_not_contact",
                "erased",
                name="suppressionreason",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_suppressions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("address_hash", name=op.f("uq_suppressions_address_hash")),
    )
    op.create_table(
        "media_list_members",
        sa.Column("media_list_id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_media_list_members_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_list_id"],
            ["media_lists.id"],
            name=op.f("fk_media_list_members_media_list_id_media_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "media_list_id", "journalist_id", name=op.f("pk_media_list_members")
        ),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column("beat_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "confirmed",
                "unsubscribed",
                name="subscriptionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("consent_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consent_method", sa.String(length=60), nullable=False),
        sa.Column("consent_text_version", sa.String(length=60), nullable=False),
        sa.Column("consent_ip_hash", sa.String(length=64), nullable=True),
        sa.Column("confirmed_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["beat_id"],
            ["beats.id"],
            name=op.f("fk_subscriptions_beat_id_beats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_subscriptions_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "journalist_id", "beat_id", name=op.f("uq_subscriptions_journalist_id_beat_id")
        ),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_subscriptions_beat_status", ["beat_id", "status"], unique=False)
    op.create_table(
        "confirmation_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=True),
        sa.Column("beat_ids", sa.String(length=500), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("sent_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("mailed_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_confirmation_requests_journalist_id_journalists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmation_requests")),
    )
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_confirmation_requests_hash_sent", ["address_hash", "sent_at"], unique=False
        )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("column_map", sa.Text(), nullable=False),
        sa.Column(
            "lawful_basis",
            sa.Enum(
                "consent", "legitimate_interest", name="lawfulbasis", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("beat_ids", sa.String(length=500), nullable=False),
        sa.Column("media_list_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "uploaded",
                "previewed",
                "queued",
                "running",
                "succeeded",
                "failed",
                name="importstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("valid_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("existing_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_import_jobs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["media_list_id"],
            ["media_lists.id"],
            name=op.f("fk_import_jobs_media_list_id_media_lists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    op.create_table(
        "import_row_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_jobs.id"],
            name=op.f("fk_import_row_errors_job_id_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_row_errors")),
    )
    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.create_index("ix_import_row_errors_job", ["job_id", "row_number"], unique=False)
    op.create_table(
        "journalist_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kept_id", sa.Integer(), nullable=True),
        sa.Column("merged_journalist_id", sa.Integer(), nullable=False),
        sa.Column("merged_email", sa.String(length=320), nullable=False),
        sa.Column("moved_subscriptions", sa.Integer(), nullable=False),
        sa.Column("moved_list_memberships", sa.Integer(), nullable=False),
        sa.Column("moved_deliveries", sa.Integer(), nullable=False),
        sa.Column("merged_by_id", sa.Integer(), nullable=True),
        sa.Column("merged_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kept_id"],
            ["journalists.id"],
            name=op.f("fk_journalist_merges_kept_id_journalists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_by_id"],
            ["users.id"],
            name=op.f("fk_journalist_merges_merged_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journalist_merges")),
    )


def downgrade() -> None:
    op.drop_table("journalist_merges")
    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_import_row_errors_job")
    op.drop_table("import_row_errors")
    op.drop_table("import_jobs")
    with op.batch_alter_table("confirmation_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_confirmation_requests_hash_sent")
    op.drop_table("confirmation_requests")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_beat_status")

    op.drop_table("subscriptions")
    op.drop_table("media_list_members")
    op.drop_table("suppressions")
    op.drop_table("journalists")
    op.drop_table("outlets")
    op.drop_table("media_lists")
    op.drop_table("beats")
