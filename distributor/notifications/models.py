"""One row per mail sent to a staff member or a test address, so a failure is visible."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.accounts.models import enum_column
from distributor.db import Base, utcnow
from distributor.statemachine import StateMachine


class StaffMailKind(enum.StrEnum):
    TEST_EMAIL = "test_email"  # the admin's end-to-end test mail
    RELEASE_TEST = "release_test"  # a release mail sent to a colleague before the real send
    NOTIFICATION = "notification"  # a workflow notification (submitted, approved, ...)


class NotificationKind(enum.StrEnum):
    SUBMITTED = "submitted"  # to editors: a release waits for review
    APPROVED = "approved"  # to the author
    SENT_BACK = "sent_back"  # to the author, with the editor's comment
    SCHEDULED = "scheduled"  # to the author and the editor who scheduled it
    SENT = "sent"  # to the author and the sender, with the first figures

    @property
    def label(self) -> str:
        return {
            "submitted": "A release is submitted for review (editors and admins)",
            "approved": "My release is approved",
            "sent_back": "My release is sent back with a comment",
            "scheduled": "A release of mine is scheduled",
            "sent": "A release of mine has been sent, with its first figures",
        }[self.value]


class StaffMailStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


STAFF_MAIL_MACHINE: StateMachine[StaffMailStatus] = StateMachine(
    "staff mail",
    {StaffMailStatus.QUEUED: {StaffMailStatus.SENT, StaffMailStatus.FAILED}},
)


class StaffMail(Base):
    """A queued one-off mail and what became of it."""

    __tablename__ = "staff_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[StaffMailKind] = mapped_column(enum_column(StaffMailKind))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500), default="")
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), index=True
    )
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[StaffMailStatus] = mapped_column(
        enum_column(StaffMailStatus), default=StaffMailStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Workflow notifications: which event, and the editor's comment when sent back.
    notification_kind: Mapped[NotificationKind | None] = mapped_column(
        enum_column(NotificationKind)
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None]


class NotificationOptOut(Base):
    """A user who does not want one kind of notification (everyone gets all by default)."""

    __tablename__ = "notification_opt_outs"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[NotificationKind] = mapped_column(enum_column(NotificationKind), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
