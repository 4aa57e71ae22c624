from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.accounts.models import enum_column
from distributor.db import Base, utcnow


class DeliveryMode(enum.StrEnum):
    EACH_RELEASE = "each_release"
    DAILY_DIGEST = "daily_digest"


class LawfulBasis(enum.StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"  # temporary failures that kept coming (BOUNCE_SOFT_THRESHOLD)
    COMPLAINT = "complaint"
    UNSUBSCRIBED_ALL = "unsubscribed_all"
    DO_NOT_CONTACT = "do_not_contact"
    ERASED = "erased"


class Beat(Base):
    """A topic journalists follow and releases are filed under."""

    __tablename__ = "beats"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(140), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Outlet(Base):
    __tablename__ = "outlets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    website: Mapped[str] = mapped_column(String(500), default="")
    country: Mapped[str] = mapped_column(String(2), default="")


_NOT_NOW = "erased_at IS NOT NULL OR is_paused OR delivery_mode = 'daily_digest'"


class Journalist(Base):
    __tablename__ = "journalists"
    __table_args__ = (
        UniqueConstraint("email_normalized"),
        # PostgreSQL only (migration 0015): the suppression key of each address, so that
        # the suppressed members of an audience are found by one probe per suppression.
        Index(
            "ix_journalists_address_hash",
            text("distributor_address_hash(email_normalized)"),
            postgresql_include=["id"],
        ).ddl_if(dialect="postgresql"),
        # The staff list's keyset order (migration 0022).
        Index("ix_journalists_name_address", "name", "email_normalized"),
        # Those the send rules may not mail now, for the audience breakdown (migration 0022),
        # with what the rules read of them (migration 0024).
        Index(
            "ix_journalists_not_now",
            "id",
            postgresql_include=["erased_at", "is_paused", "delivery_mode"],
            postgresql_where=text(_NOT_NOW),
            sqlite_where=text(_NOT_NOW),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased address: uniqueness is case-insensitive.
    email_normalized: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    outlet_id: Mapped[int | None] = mapped_column(ForeignKey("outlets.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    language: Mapped[str] = mapped_column(String(12), default="")
    phone: Mapped[str] = mapped_column(String(60), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    delivery_mode: Mapped[DeliveryMode] = mapped_column(
        enum_column(DeliveryMode), default=DeliveryMode.EACH_RELEASE
    )
    is_paused: Mapped[bool] = mapped_column(default=False)
    is_tracking_allowed: Mapped[bool] = mapped_column(default=True)
    lawful_basis: Mapped[LawfulBasis] = mapped_column(
        enum_column(LawfulBasis), default=LawfulBasis.CONSENT
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[dt.datetime | None]

    outlet: Mapped[Outlet | None] = relationship(lazy="joined")
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="journalist", cascade="all, delete-orphan"
    )


class Subscription(Base):
    """A journalist following a beat, with the evidence of their consent (GDPR Art. 7(1))."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("journalist_id", "beat_id"),
        # Covers "who follows these beats" (audience counts, the freeze) without heap reads.
        Index("ix_subscriptions_beat_status", "beat_id", "status", "journalist_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    journalist_id: Mapped[int] = mapped_column(ForeignKey("journalists.id", ondelete="CASCADE"))
    beat_id: Mapped[int] = mapped_column(ForeignKey("beats.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus), default=SubscriptionStatus.PENDING
    )
    source: Mapped[str] = mapped_column(String(60), default="")  # public_form, import, staff
    consent_at: Mapped[dt.datetime | None]
    consent_method: Mapped[str] = mapped_column(String(60), default="")
    consent_text_version: Mapped[str] = mapped_column(String(60), default="")
    consent_ip_hash: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    journalist: Mapped[Journalist] = relationship(back_populates="subscriptions")
    beat: Mapped[Beat] = relationship(lazy="joined")


media_list_members = Table(
    "media_list_members",
    Base.metadata,
    Column("media_list_id", ForeignKey("media_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("journalist_id", ForeignKey("journalists.id", ondelete="CASCADE"), primary_key=True),
)


class MediaList(Base):
    """A staff-curated list, e.g. "national desks trusted with embargoes"."""

    __tablename__ = "media_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    journalists: Mapped[list[Journalist]] = relationship(secondary=media_list_members)


class Suppression(Base):
    """An address that must not be mailed. Keyed by a hash so erasure can forget the address."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of lower(address)
    address: Mapped[str | None] = mapped_column(String(320))  # None once erased
    reason: Mapped[SuppressionReason] = mapped_column(enum_column(SuppressionReason))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SuppressionLift(Base):
    """Who lifted which suppression, when and why: the record an admin's lift must leave."""

    __tablename__ = "suppression_lifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[SuppressionReason] = mapped_column(enum_column(SuppressionReason))
    suppressed_at: Mapped[dt.datetime]
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # "journalist" when the owner opted in again; otherwise the staff member's stated reason.
    justification: Mapped[str] = mapped_column(Text, default="")
    lifted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConfirmationRequest(Base):
    """One double opt-in mail we sent: the log behind "one confirmation mail per address per day".

    Keyed by the address hash, not the address, so it holds nothing to erase.
    """

    __tablename__ = "confirmation_requests"
    __table_args__ = (
        Index("ix_confirmation_requests_hash_requested", "address_hash", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64))
    journalist_id: Mapped[int | None] = mapped_column(
        ForeignKey("journalists.id", ondelete="SET NULL")
    )
    beat_ids: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # when it was asked for
    # Set once the worker handed the mail to SMTP: a redelivered task sends nothing twice,
    # and the sweep re-queues requests the broker lost.
    mailed_at: Mapped[dt.datetime | None]
    # Set when its link was used: a confirm link works once, so a copy kept after an
    # unsubscribe cannot subscribe its owner again.
    confirmed_at: Mapped[dt.datetime | None]


class ImportStatus(enum.StrEnum):
    UPLOADED = "uploaded"  # file accepted; columns not mapped yet
    CHECKING = "checking"  # a large file's dry run, running in a worker
    PREVIEWED = "previewed"  # parsed and checked; waiting for staff to start it
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # rolled back as a whole: nothing from it is in the database


class ImportJob(Base):
    """A CSV upload: its mapping, dry-run counts and the progress of the worker that imports it."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    # The uploaded file, kept in the database so any worker can read it.
    content: Mapped[str] = mapped_column(Text)
    column_map: Mapped[str] = mapped_column(Text, default="{}")  # JSON: field -> CSV header
    lawful_basis: Mapped[LawfulBasis] = mapped_column(enum_column(LawfulBasis))
    beat_ids: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    media_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_lists.id", ondelete="SET NULL")
    )
    status: Mapped[ImportStatus] = mapped_column(
        enum_column(ImportStatus), default=ImportStatus.UPLOADED
    )
    total_rows: Mapped[int] = mapped_column(default=0)
    valid_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    existing_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    row_errors: Mapped[list[ImportRowError]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="ImportRowError.row_number"
    )


class ImportRowError(Base):
    """Why one row of an import was rejected in the dry run."""

    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_job", "job_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    row_number: Mapped[int]
    email: Mapped[str] = mapped_column(String(320), default="")
    # invalid, duplicate_in_file, suppressed: the row is skipped; existing: already in the
    # database, left unchanged (only added to the chosen media list).
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text)

    job: Mapped[ImportJob] = relationship(back_populates="row_errors")


class JournalistMerge(Base):
    """Audit trail of a duplicate folded into the record kept."""

    __tablename__ = "journalist_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    kept_id: Mapped[int | None] = mapped_column(ForeignKey("journalists.id", ondelete="SET NULL"))
    merged_journalist_id: Mapped[int]  # the removed row's id (gone, so no foreign key)
    merged_email: Mapped[str] = mapped_column(String(320))
    moved_subscriptions: Mapped[int] = mapped_column(default=0)
    moved_list_memberships: Mapped[int] = mapped_column(default=0)
    moved_deliveries: Mapped[int] = mapped_column(default=0)
    merged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
