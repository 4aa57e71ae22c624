from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

import sqlalchemy.dialects.postgresql  # noqa: F401 - registers to_tsvector() argument types
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from distributor.accounts.models import User, enum_column
from distributor.audience.models import Beat, MediaList
from distributor.db import Base, utcnow


class ReleaseStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


# Statuses in which a published release may be shown publicly (see services.is_publicly_visible).
PUBLIC_STATUSES: frozenset[ReleaseStatus] = frozenset(
    {ReleaseStatus.APPROVED, ReleaseStatus.SCHEDULED, ReleaseStatus.SENDING, ReleaseStatus.SENT}
)


class ReleaseKind(Base):
    """Press release, update, report, statement...; the list is editable by admins."""

    __tablename__ = "release_kinds"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(default=0)


release_beats = Table(
    "release_beats",
    Base.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("beat_id", ForeignKey("beats.id", ondelete="CASCADE"), primary_key=True),
)

release_contacts = Table(
    "release_contacts",
    Base.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "press_contact_id", ForeignKey("press_contacts.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("position", Integer, nullable=False, default=0),
)

release_media_lists = Table(
    "release_media_lists",
    Base.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("media_list_id", ForeignKey("media_lists.id", ondelete="CASCADE"), primary_key=True),
)


class PressContact(Base):
    """A reusable named press contact shown on releases."""

    __tablename__ = "press_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(60), default="")


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (
        Index("ix_releases_status_published", "status", "published_at"),
        Index("ix_releases_embargo_until", "embargo_until"),
        Index("ix_releases_photo_key", "photo_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind_id: Mapped[int] = mapped_column(ForeignKey("release_kinds.id"))
    title: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(320), unique=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised (nh3) rendering
    status: Mapped[ReleaseStatus] = mapped_column(
        enum_column(ReleaseStatus), default=ReleaseStatus.DRAFT
    )
    # Public-lift time, separate from the send time (scheduled_send_at).
    embargo_until: Mapped[dt.datetime | None]
    scheduled_send_at: Mapped[dt.datetime | None]
    published_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    photo_key: Mapped[str | None] = mapped_column(String(200))  # stored image base name
    photo_caption: Mapped[str] = mapped_column(Text, default="")
    photo_credit: Mapped[str] = mapped_column(String(300), default="")
    photo_alt: Mapped[str] = mapped_column(String(500), default="")
    campaign_tags: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    # Pinned to the top of the newsroom home (one at a time; see releases.services).
    is_featured: Mapped[bool] = mapped_column(default=False, server_default=false())
    preview_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who a draft belongs to: only they (or an editor or admin) may see and change it; an
    # editor takes a draft over by becoming its owner. None: anyone (e.g. seeded releases).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    kind: Mapped[ReleaseKind] = relationship(lazy="joined")
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    beats: Mapped[list[Beat]] = relationship(secondary=release_beats, order_by=Beat.name)
    contacts: Mapped[list[PressContact]] = relationship(
        secondary=release_contacts, order_by=release_contacts.c.position
    )
    media_lists: Mapped[list[MediaList]] = relationship(secondary=release_media_lists)
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="release", cascade="all, delete-orphan", order_by="Attachment.id"
    )

    @property
    def credit_line(self) -> str:
        """``Photo: <credit>``, unless the credit already says so (``Photo by ...``, ``©``)."""
        return credit_line(self.photo_credit)


_CREDIT_SAYS_SO = re.compile(r"^\s*(photo|photograph|picture|image|credit|©|\(c\))", re.I)


def credit_line(credit: str) -> str:
    credit = " ".join(credit.split())
    if not credit:
        return ""
    return credit if _CREDIT_SAYS_SO.match(credit) else f"Photo: {credit}"


def search_document() -> ColumnElement[Any]:
    """The text the newsroom searches, as a PostgreSQL tsvector (same expression as the index)."""
    space: ColumnElement[str] = literal_column("' '")
    text = Release.title.op("||")(space).op("||")(Release.summary).op("||")(space)
    return func.to_tsvector(
        literal_column("'english'::regconfig"), text.op("||")(Release.body_markdown)
    )


# A GIN expression index for newsroom search; PostgreSQL only (SQLite searches with LIKE).
Release.__table__.append_constraint(  # type: ignore[attr-defined]
    Index("ix_releases_search", search_document(), postgresql_using="gin").ddl_if(
        dialect="postgresql"
    )
)


class Attachment(Base):
    """A PDF or image attached to a release, served from a stable URL."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    release: Mapped[Release] = relationship(back_populates="attachments")


class ReleaseTransition(Base):
    """One move of a release through the workflow: the audit log shown on the release page."""

    __tablename__ = "release_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[ReleaseStatus] = mapped_column(enum_column(ReleaseStatus))
    to_status: Mapped[ReleaseStatus] = mapped_column(enum_column(ReleaseStatus))
    # None when the system (a worker or a sweep) made the move.
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    by: Mapped[User | None] = relationship(lazy="joined")


class ReleaseVersion(Base):
    """A saved state of a release's title, summary and body, kept for comparison."""

    __tablename__ = "release_versions"
    __table_args__ = (UniqueConstraint("release_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    by: Mapped[User | None] = relationship(lazy="joined")
