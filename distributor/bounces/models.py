from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.accounts.models import enum_column
from distributor.db import Base, utcnow
from distributor.delivery.models import Delivery

# Hard, soft, policy, message (size or content) and relay: the outcome authority's kinds,
# stored by value in a plain string column (so a new kind needs no migration).
from distributor.mail.outcomes import BounceKind as BounceKind


class Classification(enum.StrEnum):
    PENDING = "pending"  # stored, not yet processed
    BOUNCE = "bounce"
    DELAY = "delay"  # a "delayed" DSN: the remote MTA is still trying; not a bounce
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"  # RFC 3834 auto-replies and vacation notices: kept, ignored
    UNSUBSCRIBE = "unsubscribe"  # mail to the List-Unsubscribe mailto address (RFC 2369)
    OTHER = "other"  # an ESP event we do not act on (delivered, opened, ...)
    UNRECOGNISED = "unrecognised"


class InboundMessage(Base):
    """One message (or webhook event) that reached us on the bounce side, raw kept 30 days."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # smtp, imap, pop3 or webhook-<esp>
    source: Mapped[str] = mapped_column(String(40))
    # Message-ID of the inbound message, an ESP event id, or a content hash: a second copy of
    # the same report finds this row and changes nothing.
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    # None once purged; deferred so lists never pull the blobs.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int] = mapped_column(default=0)
    classification: Mapped[Classification] = mapped_column(
        enum_column(Classification), default=Classification.PENDING, index=True
    )
    summary: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None]
    raw_purged_at: Mapped[dt.datetime | None]


class Bounce(Base):
    """One failed recipient reported by a DSN, a non-standard bounce or an ESP event."""

    __tablename__ = "bounces"
    __table_args__ = (
        UniqueConstraint("inbound_message_id", "email"),
        Index("ix_bounces_email_received", "email", "received_at"),
        Index("ix_bounces_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_message_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE")
    )
    # Null only when nothing tied the report to a message we sent (then nothing is suppressed).
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))  # lower-cased; None once erased
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind))
    status_code: Mapped[str] = mapped_column(String(16), default="")  # RFC 3463, e.g. 5.1.1
    action: Mapped[str] = mapped_column(String(20), default="")  # RFC 3464 Action
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    remote_mta: Mapped[str] = mapped_column(String(255), default="")
    matched_by: Mapped[str] = mapped_column(String(20), default="")  # verp, message-id, address
    is_suppressing: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    inbound_message: Mapped[InboundMessage] = relationship()
    delivery: Mapped[Delivery | None] = relationship()


class Complaint(Base):
    """A recipient marked our message as spam (RFC 5965 ARF, or an ESP's complaint event)."""

    __tablename__ = "complaints"
    __table_args__ = (
        UniqueConstraint("inbound_message_id", "email"),
        Index("ix_complaints_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_message_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE")
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))
    feedback_type: Mapped[str] = mapped_column(String(40), default="abuse")  # RFC 5965 3.1
    user_agent: Mapped[str] = mapped_column(String(255), default="")  # who reported it
    matched_by: Mapped[str] = mapped_column(String(20), default="")
    is_suppressing: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    inbound_message: Mapped[InboundMessage] = relationship()
    delivery: Mapped[Delivery | None] = relationship()
