"""embargo room: terms, acceptances, standings, breaches, room access, access log, notices

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embargo_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_embargo_terms_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_terms")),
        sa.UniqueConstraint("version", name=op.f("uq_embargo_terms_version")),
    )
    op.create_table(
        "embargo_breaches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("probation_until", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("links_revoked", sa.Integer(), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_embargo_breaches_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_embargo_breaches_recorded_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_embargo_breaches_release_id_releases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_breaches")),
    )
    with op.batch_alter_table("embargo_breaches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embargo_breaches_journalist_id"), ["journalist_id"], unique=False
        )

    op.create_table(
        "embargo_standings",
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column(
            "standing",
            sa.Enum(
                "allowed", "not_allowed", "probation", name="standing", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("probation_until", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_embargo_standings_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_embargo_standings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("journalist_id", name=op.f("pk_embargo_standings")),
    )
    op.create_table(
        "embargo_terms_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column("terms_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("accepted_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_embargo_terms_acceptances_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_embargo_terms_acceptances_release_id_releases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["terms_id"],
            ["embargo_terms.id"],
            name=op.f("fk_embargo_terms_acceptances_terms_id_embargo_terms"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_terms_acceptances")),
        sa.UniqueConstraint(
            "journalist_id",
            "terms_id",
            name=op.f("uq_embargo_terms_acceptances_journalist_id_terms_id"),
        ),
    )
    with op.batch_alter_table("embargo_terms_acceptances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embargo_terms_acceptances_journalist_id"),
            ["journalist_id"],
            unique=False,
        )

    op.create_table(
        "release_embargo_options",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("requires_terms", sa.Boolean(), nullable=False),
        sa.Column("sends_lift_note", sa.Boolean(), nullable=False),
        sa.Column("sent_title", sa.String(length=300), nullable=True),
        sa.Column("sent_summary", sa.Text(), nullable=True),
        sa.Column("sent_body_markdown", sa.Text(), nullable=True),
        sa.Column("sent_attachments", sa.Text(), nullable=True),
        sa.Column("sent_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lift_noted_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_embargo_options_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_release_embargo_options")),
    )
    op.create_table(
        "embargo_accesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("active", "revoked", name="accessstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("browser_hash", sa.String(length=64), nullable=True),
        sa.Column("bound_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_embargo_accesses_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_embargo_accesses_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_embargo_accesses_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_accesses")),
        sa.UniqueConstraint(
            "release_id", "journalist_id", name=op.f("uq_embargo_accesses_release_id_journalist_id")
        ),
    )
    with op.batch_alter_table("embargo_accesses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embargo_accesses_browser_hash"), ["browser_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_embargo_accesses_journalist_id"), ["journalist_id"], unique=False
        )

    op.create_table(
        "embargo_access_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("journalist_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "landing",
                "terms_accepted",
                "entered",
                "room_view",
                "photo",
                "download",
                "refused",
                "new_browser_requested",
                name="accesseventkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("occurred_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_id"],
            ["embargo_accesses.id"],
            name=op.f("fk_embargo_access_events_access_id_embargo_accesses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["journalist_id"],
            ["journalists.id"],
            name=op.f("fk_embargo_access_events_journalist_id_journalists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_embargo_access_events_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_access_events")),
    )
    with op.batch_alter_table("embargo_access_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embargo_access_events_access_id"), ["access_id"], unique=False
        )
        batch_op.create_index(
            "ix_embargo_access_events_release_time", ["release_id", "occurred_at"], unique=False
        )

    op.create_table(
        "embargo_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "correction",
                "lifted",
                "new_browser",
                name="noticekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "sent", "failed", name="noticestatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["access_id"],
            ["embargo_accesses.id"],
            name=op.f("fk_embargo_notices_access_id_embargo_accesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embargo_notices")),
        sa.UniqueConstraint(
            "access_id", "kind", "key", name=op.f("uq_embargo_notices_access_id_kind_key")
        ),
    )
    with op.batch_alter_table("embargo_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embargo_notices_access_id"), ["access_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_embargo_notices_status"), ["status"], unique=False)
    with op.batch_alter_table("releases", schema=None) as batch_op:
        # The photo route looks a release up by its photo key (served only once public).
        batch_op.create_index("ix_releases_photo_key", ["photo_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index("ix_releases_photo_key")
    with op.batch_alter_table("embargo_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embargo_notices_status"))
        batch_op.drop_index(batch_op.f("ix_embargo_notices_access_id"))

    op.drop_table("embargo_notices")
    with op.batch_alter_table("embargo_access_events", schema=None) as batch_op:
        batch_op.drop_index("ix_embargo_access_events_release_time")
        batch_op.drop_index(batch_op.f("ix_embargo_access_events_access_id"))

    op.drop_table("embargo_access_events")
    with op.batch_alter_table("embargo_accesses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embargo_accesses_journalist_id"))
        batch_op.drop_index(batch_op.f("ix_embargo_accesses_browser_hash"))

    op.drop_table("embargo_accesses")
    op.drop_table("release_embargo_options")
    with op.batch_alter_table("embargo_terms_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embargo_terms_acceptances_journalist_id"))

    op.drop_table("embargo_terms_acceptances")
    op.drop_table("embargo_standings")
    with op.batch_alter_table("embargo_breaches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embargo_breaches_journalist_id"))

    op.drop_table("embargo_breaches")
    op.drop_table("embargo_terms")
