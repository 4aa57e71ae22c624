from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.accounts.models import enum_column
from distributor.db import Base, utcnow


class EventKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"


class TrackedLink(Base):
    """One URL of one release's body; a click redirect names it by its opaque id."""

    __tablename__ = "tracked_links"
    __table_args__ = (UniqueConstraint("release_id", "url_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)  # order of first appearance in the body
    url: Mapped[str] = mapped_column(Text)
    url_hash: Mapped[str] = mapped_column(
        String(64)
    )  # sha256 hex: a unique key PostgreSQL can index
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrackingEvent(Base):
    """One pixel fetch or link click of one delivery, classified human or machine at flush time."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_release_kind", "release_id", "kind", "occurred_at"),
        Index("ix_tracking_events_delivery", "delivery_id", "kind"),
        Index("ix_tracking_events_occurred_at", "occurred_at"),
        # Human reactions by journalist: the staff list's engagement filters (migration 0015).
        Index(
            "ix_tracking_events_human",
            "journalist_id",
            "occurred_at",
            postgresql_where=text("is_machine IS FALSE"),
            sqlite_where=text("is_machine IS FALSE"),
        ),
        # Events no flush has classified yet: each flush finds them here instead of reading
        # every event ever stored (migration 0026).
        Index(
            "ix_tracking_events_unclassified",
            "delivery_id",
            "kind",
            postgresql_where=text("classified_at IS NULL"),
            sqlite_where=text("classified_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Idempotency key minted when the request was answered: a flush replayed after a crash
    # inserts nothing twice.
    event_uid: Mapped[str] = mapped_column(String(32), unique=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    journalist_id: Mapped[int | None] = mapped_column(
        ForeignKey("journalists.id", ondelete="SET NULL"), index=True
    )
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracked_links.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[EventKind] = mapped_column(enum_column(EventKind))
    occurred_at: Mapped[dt.datetime]
    method: Mapped[str] = mapped_column(String(8), default="GET")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    is_machine: Mapped[bool] = mapped_column(default=False)
    # Why an event counts as a machine's ("apple_mpp", "image_proxy", "early", "head",
    # "scanner_ua", "all_links"); empty for a human.
    machine_reason: Mapped[str] = mapped_column(String(32), default="")
    classified_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
