"""media library: assets with credit, licence and rights expiry, their history, release galleries

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("image", "document", name="assetkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("alt_text", sa.Text(), nullable=False),
        sa.Column("creator", sa.String(length=200), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("copyright_holder", sa.String(length=200), nullable=False),
        sa.Column(
            "licence",
            sa.Enum(
                "own",
                "editorial",
                "creative_commons",
                "licensed_until",
                "other",
                name="licencekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("licence_version", sa.String(length=60), nullable=False),
        sa.Column("licence_text", sa.Text(), nullable=False),
        sa.Column("usage_notes", sa.Text(), nullable=False),
        sa.Column("max_download_width", sa.Integer(), nullable=True),
        sa.Column("rights_until", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "rights_state",
            sa.Enum("active", "expired", name="rightsstate", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("expiry_notice_for", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("has_consent", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.String(length=500), nullable=False),
        sa.Column(
            "media_page",
            sa.Enum(
                "",
                "logos",
                "spokespeople",
                "fact_sheets",
                "pictures",
                name="mediapagesection",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_media_assets_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_assets")),
        sa.UniqueConstraint("key", name=op.f("uq_media_assets_key")),
    )
    with op.batch_alter_table("media_assets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_assets_rights", ["rights_state", "rights_until"], unique=False
        )

    op.create_table(
        "media_asset_beats",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("beat_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_media_asset_beats_asset_id_media_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["beat_id"],
            ["beats.id"],
            name=op.f("fk_media_asset_beats_beat_id_beats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", "beat_id", name=op.f("pk_media_asset_beats")),
    )
    op.create_table(
        "media_asset_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_media_asset_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_media_asset_events_asset_id_media_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_asset_events")),
    )
    with op.batch_alter_table("media_asset_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_asset_events_asset_id"), ["asset_id"], unique=False
        )

    op.create_table(
        "release_media",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_lead", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_release_media_asset_id_media_assets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_media_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", "asset_id", name=op.f("pk_release_media")),
    )
    with op.batch_alter_table("release_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_media_asset_id"), ["asset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("release_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_media_asset_id"))

    op.drop_table("release_media")
    with op.batch_alter_table("media_asset_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_asset_events_asset_id"))

    op.drop_table("media_asset_events")
    op.drop_table("media_asset_beats")
    with op.batch_alter_table("media_assets", schema=None) as batch_op:
        batch_op.drop_index("ix_media_assets_rights")

    op.drop_table("media_assets")
