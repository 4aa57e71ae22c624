"""releases: kinds, releases, contacts, attachments

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUS = sa.Enum(
    "draft",
    "in_review",
    "approved",
    "scheduled",
    "sending",
    "sent",
    "withdrawn",
    name="releasestatus",
    native_enum=False,
    length=32,
)


def upgrade() -> None:
    op.create_table(
        "press_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("phone", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_press_contacts")),
    )
    op.create_table(
        "release_kinds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_kinds")),
        sa.UniqueConstraint("name", name=op.f("uq_release_kinds_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_release_kinds_slug")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("slug", sa.String(length=320), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body_markdown", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column(
            "status",
            STATUS,
            nullable=False,
        ),
        sa.Column("embargo_until", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("scheduled_send_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("photo_key", sa.String(length=200), nullable=True),
        sa.Column("photo_caption", sa.Text(), nullable=False),
        sa.Column("photo_credit", sa.String(length=300), nullable=False),
        sa.Column("photo_alt", sa.String(length=500), nullable=False),
        sa.Column("campaign_tags", sa.String(length=500), nullable=False),
        sa.Column("preview_token", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_releases_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["kind_id"], ["release_kinds.id"], name=op.f("fk_releases_kind_id_release_kinds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("preview_token", name=op.f("uq_releases_preview_token")),
        sa.UniqueConstraint("slug", name=op.f("uq_releases_slug")),
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_releases_published_at"), ["published_at"], unique=False
        )
        batch_op.create_index(
            "ix_releases_status_published", ["status", "published_at"], unique=False
        )
        batch_op.create_index("ix_releases_embargo_until", ["embargo_until"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Newsroom full-text search; the query uses exactly this expression (releases.models).
        op.execute(
            "CREATE INDEX ix_releases_search ON releases USING gin "
            "(to_tsvector('english'::regconfig, "
            "(((title || ' ') || summary) || ' ') || body_markdown))"
        )

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("stored_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_attachments_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
        sa.UniqueConstraint("stored_name", name=op.f("uq_attachments_stored_name")),
    )
    op.create_table(
        "release_beats",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("beat_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["beat_id"],
            ["beats.id"],
            name=op.f("fk_release_beats_beat_id_beats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_beats_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", "beat_id", name=op.f("pk_release_beats")),
    )
    op.create_table(
        "release_contacts",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("press_contact_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["press_contact_id"],
            ["press_contacts.id"],
            name=op.f("fk_release_contacts_press_contact_id_press_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_contacts_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", "press_contact_id", name=op.f("pk_release_contacts")),
    )
    op.create_table(
        "release_media_lists",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("media_list_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_list_id"],
            ["media_lists.id"],
            name=op.f("fk_release_media_lists_media_list_id_media_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_media_lists_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", "media_list_id", name=op.f("pk_release_media_lists")),
    )
    op.create_table(
        "release_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("from_status", STATUS, nullable=False),
        sa.Column("to_status", STATUS, nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["users.id"],
            name=op.f("fk_release_transitions_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_transitions_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_transitions")),
    )
    with op.batch_alter_table("release_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_release_transitions_release_id"), ["release_id"], unique=False
        )
    op.create_table(
        "release_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body_markdown", sa.Text(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["users.id"],
            name=op.f("fk_release_versions_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_versions_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_versions")),
        sa.UniqueConstraint(
            "release_id", "number", name=op.f("uq_release_versions_release_id_number")
        ),
    )


def downgrade() -> None:
    op.drop_table("release_versions")
    with op.batch_alter_table("release_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_transitions_release_id"))
    op.drop_table("release_transitions")
    op.drop_table("release_media_lists")
    op.drop_table("release_contacts")
    op.drop_table("release_beats")
    op.drop_table("attachments")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_releases_search")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index("ix_releases_embargo_until")
        batch_op.drop_index("ix_releases_status_published")
        batch_op.drop_index(batch_op.f("ix_releases_published_at"))

    op.drop_table("releases")
    op.drop_table("release_kinds")
    op.drop_table("press_contacts")
