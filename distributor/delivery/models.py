from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.accounts.models import enum_column
from distributor.audience.models import Journalist
from distributor.db import Base, utcnow
from distributor.releases.models import Release


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"  # waits for next_attempt_at, then back to queued
    FAILED = "failed"
    # The final dot was written and no reply was read (RFC 1047), or a worker died with the
    # row on a connection: the server may or may not have it. Never resent by itself; the only
    # state that needs a person.
    IN_DOUBT = "in_doubt"
    CANCELLED = "cancelled"
    DIGEST = "digest"  # goes out in the journalist's next daily digest


class SendStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class Send(Base):
    """One send of one release: the recipient set frozen into deliveries when it starts."""

    __tablename__ = "sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[SendStatus] = mapped_column(
        enum_column(SendStatus), default=SendStatus.SCHEDULED
    )
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(index=True)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recipient_count: Mapped[int] = mapped_column(default=0)
    paused_at: Mapped[dt.datetime | None]
    # When a worker last claimed a batch: the dispatch sweep restarts a send that went quiet
    # (its broker messages lost) while it still has due rows.
    last_claim_at: Mapped[dt.datetime | None]
    # When batch tasks were last enqueued for it: tasks still waiting in the broker behind
    # busy workers are not enqueued a second time by the sweep.
    dispatched_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    # Why the send paused itself (e.g. the relay refused our envelope sender); empty when staff
    # paused it or it is not paused.
    pause_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    release: Mapped[Release] = relationship()


class DeliveryClaim(Base):
    """One batch's hold on the rows it claimed. Times are the database's clock, never a
    worker's. A live batch moves ``heartbeat_at`` every few seconds; recovery takes a claim
    whose heartbeat is older than ``DELIVERY_CLAIM_TIMEOUT_SECONDS`` by setting
    ``recovered_at``, and every write of the batch checks in its own statement that it is
    still unset (the fence)."""

    __tablename__ = "delivery_claims"
    __table_args__ = (
        Index(
            "ix_delivery_claims_live",
            "heartbeat_at",
            postgresql_where=text("recovered_at IS NULL AND ended_at IS NULL"),
            sqlite_where=text("recovered_at IS NULL AND ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("sends.id", ondelete="CASCADE"), index=True)
    worker: Mapped[str] = mapped_column(String(120), default="")
    claimed_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]  # the batch finished and settled every row
    recovered_at: Mapped[dt.datetime | None]  # the sweep took it: the batch must stop


class Delivery(Base):
    """One message of one release to one journalist: the per-recipient ledger row."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("release_id", "journalist_id"),
        # No index names ``status``: a status move then rewrites no index entry and, with room
        # on the page (``fillfactor``, migration 0023), PostgreSQL updates the row in place
        # (a heap-only tuple); the acceptance, one write per message, is such a move.
        # Per-send reads and the deferred rows due go through (send_id, next_attempt_at).
        Index("ix_deliveries_send", "send_id", "next_attempt_at"),
        # The queue: rows no batch holds (``claim_id`` NULL: queued, deferred, cancelled,
        # digest). A claim sets ``claim_id`` and so leaves it; every move back to queued or
        # deferred clears it (``ledger.UNCLAIMED_STATUSES``). Fresh rows (``next_attempt_at``
        # NULL) lie in id order, so a claim can start after the last id it took (migration 0027).
        Index(
            "ix_deliveries_unclaimed",
            "send_id",
            "next_attempt_at",
            "id",
            postgresql_where=text("claim_id IS NULL"),
            sqlite_where=text("claim_id IS NULL"),
        ),
        # The rows of a claim (recovery, the end of a batch, rows still sending), by send: an
        # acceptance names its rows by id and must not be planned over its claim's rows.
        Index(
            "ix_deliveries_claim",
            "send_id",
            "claim_id",
            postgresql_where=text("claim_id IS NOT NULL"),
            sqlite_where=text("claim_id IS NOT NULL"),
        ),
        # A digest reader's rows (digest rows are never claimed).
        Index(
            "ix_deliveries_digest",
            "journalist_id",
            postgresql_where=text("claim_id IS NULL"),
            sqlite_where=text("claim_id IS NULL"),
        ),
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign keys on ``send_id`` and ``release_id``: each would cost every frozen row a
    # referential check (about 40% of a freeze, migration 0028), and the freeze, the only
    # writer of these rows, inserts them for the send it holds. A trigger on ``sends``
    # deletes a send's rows with it (and so with its release, which cascades to the send).
    send_id: Mapped[int]
    release_id: Mapped[int]  # the send's release
    # No foreign key either (migration 0029): its check locked every recipient's journalist
    # row, about a third of a freeze. A trigger on ``journalists`` clears the id of a deleted
    # journalist's rows (erasure anonymises history), and no journalist is deleted while a
    # freeze runs (``distributor.audience.deletion``).
    journalist_id: Mapped[int | None]
    email: Mapped[str | None] = mapped_column(String(320))  # frozen at send start; None once erased
    recipient_domain: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus), default=DeliveryStatus.QUEUED
    )
    # Beats (names, comma-separated) and media lists that brought this journalist in.
    matched_beats: Mapped[str] = mapped_column(Text, default="")
    matched_lists: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0)
    # Start of the retry lifetime (DELIVERY_LIFETIME_HOURS); reset when staff retry a failure.
    first_attempt_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    # The ``delivery_claims`` row of the batch holding it (no foreign key: the claim UPDATE of
    # every row would pay for the check; both go with their send).
    claim_id: Mapped[int | None]
    # The SMTP connection of the batch that carries the row (one message in doubt per lane).
    claim_lane: Mapped[int | None] = mapped_column(SmallInteger)
    sent_at: Mapped[dt.datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(255))
    verp_token: Mapped[str] = mapped_column(String(64), unique=True)
    smtp_code: Mapped[int | None]
    smtp_response: Mapped[str] = mapped_column(Text, default="")
    is_policy_rejection: Mapped[bool] = mapped_column(default=False)  # 5.7.x: our problem
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    journalist: Mapped[Journalist | None] = relationship(
        primaryjoin="foreign(Delivery.journalist_id) == Journalist.id"
    )


class DigestStatus(enum.StrEnum):
    SENDING = "sending"  # claimed; a row a crash left here is never resent by itself
    SENT = "sent"
    FAILED = "failed"


class DigestMail(Base):
    """One journalist's daily digest for one day: the row that makes the digest sweep idempotent."""

    __tablename__ = "digest_mails"
    __table_args__ = (UniqueConstraint("journalist_id", "digest_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journalist_id: Mapped[int] = mapped_column(ForeignKey("journalists.id", ondelete="CASCADE"))
    digest_date: Mapped[dt.date]  # the day in the organisation's time zone
    status: Mapped[DigestStatus] = mapped_column(
        enum_column(DigestStatus), default=DigestStatus.SENDING
    )
    verp_token: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(255))
    release_ids: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    smtp_response: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
