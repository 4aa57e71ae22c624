"""Embargo terms, who may receive embargoed news, personal room access and its log."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.accounts.models import User, enum_column
from distributor.db import Base, utcnow
from distributor.statemachine import StateMachine


class EmbargoTerms(Base):
    """One version of the organisation's embargo terms; a new text is a new version."""

    __tablename__ = "embargo_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    summary: Mapped[str] = mapped_column(Text, default="")  # what the mail says
    body: Mapped[str] = mapped_column(Text, default="")  # the full terms, shown in the room
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    created_by: Mapped[User | None] = relationship(lazy="joined")


class TermsAcceptance(Base):
    """Evidence that a journalist accepted one version of the terms (who, when, which)."""

    __tablename__ = "embargo_terms_acceptances"
    __table_args__ = (UniqueConstraint("journalist_id", "terms_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journalist_id: Mapped[int] = mapped_column(
        ForeignKey("journalists.id", ondelete="CASCADE"), index=True
    )
    terms_id: Mapped[int] = mapped_column(ForeignKey("embargo_terms.id", ondelete="RESTRICT"))
    # The room in which they accepted (None once that release is deleted).
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    terms: Mapped[EmbargoTerms] = relationship(lazy="joined")


class Standing(enum.StrEnum):
    """Whether a journalist may receive embargoed releases."""

    ALLOWED = "allowed"
    NOT_ALLOWED = "not_allowed"
    PROBATION = "probation"  # not allowed until ``probation_until``

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class EmbargoStanding(Base):
    """A journalist's embargo standing; no row means allowed."""

    __tablename__ = "embargo_standings"

    journalist_id: Mapped[int] = mapped_column(
        ForeignKey("journalists.id", ondelete="CASCADE"), primary_key=True
    )
    standing: Mapped[Standing] = mapped_column(enum_column(Standing), default=Standing.ALLOWED)
    probation_until: Mapped[dt.datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EmbargoBreach(Base):
    """A recorded breach of an embargo: the release, a note, and the probation it started."""

    __tablename__ = "embargo_breaches"

    id: Mapped[int] = mapped_column(primary_key=True)
    journalist_id: Mapped[int] = mapped_column(
        ForeignKey("journalists.id", ondelete="CASCADE"), index=True
    )
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    probation_until: Mapped[dt.datetime]
    links_revoked: Mapped[int] = mapped_column(default=0)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReleaseEmbargoOptions(Base):
    """Per release: whether the room asks for the terms, and whether a lift note goes out."""

    __tablename__ = "release_embargo_options"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    requires_terms: Mapped[bool] = mapped_column(default=False)
    sends_lift_note: Mapped[bool] = mapped_column(default=False)
    # What the recipients received, to show "updated" in the room (taken when the send starts).
    sent_title: Mapped[str | None] = mapped_column(String(300))
    sent_summary: Mapped[str | None] = mapped_column(Text)
    sent_body_markdown: Mapped[str | None] = mapped_column(Text)
    sent_attachments: Mapped[str | None] = mapped_column(Text)  # file names, one a line
    sent_at: Mapped[dt.datetime | None]
    lift_noted_at: Mapped[dt.datetime | None]  # the lift notes were queued
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AccessStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


ACCESS_MACHINE: StateMachine[AccessStatus] = StateMachine(
    "embargo access",
    {AccessStatus.ACTIVE: {AccessStatus.REVOKED}, AccessStatus.REVOKED: {AccessStatus.ACTIVE}},
)


class EmbargoAccess(Base):
    """One journalist's personal access to one embargoed release's room."""

    __tablename__ = "embargo_accesses"
    __table_args__ = (UniqueConstraint("release_id", "journalist_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    journalist_id: Mapped[int] = mapped_column(
        ForeignKey("journalists.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    status: Mapped[AccessStatus] = mapped_column(
        enum_column(AccessStatus), default=AccessStatus.ACTIVE
    )
    # sha256 of the browser key the link was first opened with (one browser per link).
    browser_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    bound_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AccessEventKind(enum.StrEnum):
    LANDING = "landing"  # the link was opened (scanners too)
    TERMS_ACCEPTED = "terms_accepted"
    ENTERED = "entered"  # a browser was bound to the link
    ROOM_VIEW = "room_view"
    PHOTO = "photo"
    DOWNLOAD = "download"
    REFUSED = "refused"  # another browser or another journalist's browser
    NEW_BROWSER_REQUESTED = "new_browser_requested"


class AccessEvent(Base):
    """One view or download in a room, per journalist (time and what; no IP address)."""

    __tablename__ = "embargo_access_events"
    __table_args__ = (Index("ix_embargo_access_events_release_time", "release_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    access_id: Mapped[int] = mapped_column(
        ForeignKey("embargo_accesses.id", ondelete="CASCADE"), index=True
    )
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    journalist_id: Mapped[int] = mapped_column(ForeignKey("journalists.id", ondelete="CASCADE"))
    kind: Mapped[AccessEventKind] = mapped_column(enum_column(AccessEventKind))
    detail: Mapped[str] = mapped_column(String(300), default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NoticeKind(enum.StrEnum):
    CORRECTION = "correction"
    LIFTED = "lifted"
    NEW_BROWSER = "new_browser"


class NoticeStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


NOTICE_MACHINE: StateMachine[NoticeStatus] = StateMachine(
    "embargo notice",
    {NoticeStatus.QUEUED: {NoticeStatus.SENT, NoticeStatus.FAILED}},
)


class EmbargoNotice(Base):
    """A short mail to one room's journalist; the unique key makes each go out once."""

    __tablename__ = "embargo_notices"
    __table_args__ = (UniqueConstraint("access_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    access_id: Mapped[int] = mapped_column(
        ForeignKey("embargo_accesses.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[NoticeKind] = mapped_column(enum_column(NoticeKind))
    key: Mapped[str] = mapped_column(String(64))  # correction number, "lift", browser nonce
    changes: Mapped[str] = mapped_column(Text, default="")  # what a correction changed
    status: Mapped[NoticeStatus] = mapped_column(
        enum_column(NoticeStatus), default=NoticeStatus.QUEUED, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
