"""Recording staff mail and who wants which notification."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.notifications.models import (
    STAFF_MAIL_MACHINE,
    NotificationKind,
    NotificationOptOut,
    StaffMail,
    StaffMailKind,
    StaffMailStatus,
)

# What staff see of an error: the first line, short enough for a table cell.
_ERROR_CHARS = 300


def record_staff_mail(
    session: Session,
    *,
    kind: StaffMailKind,
    to_address: str,
    subject: str = "",
    release_id: int | None = None,
    requested_by_id: int | None = None,
    notification_kind: NotificationKind | None = None,
    note: str = "",
) -> StaffMail:
    """A queued row for a mail about to be enqueued; its id goes to the task."""
    mail = StaffMail(
        kind=kind,
        to_address=to_address,
        subject=subject[:500],
        release_id=release_id,
        requested_by_id=requested_by_id,
        status=StaffMailStatus.QUEUED,
        notification_kind=notification_kind,
        note=note[:2000],
    )
    session.add(mail)
    session.flush()
    return mail


def _move(mail: StaffMail, target: StaffMailStatus) -> None:
    STAFF_MAIL_MACHINE.check(mail.status, target)
    mail.status = target
    mail.finished_at = utcnow()


def note_attempt_failed(session: Session, staff_mail_id: int, error: str) -> None:
    """A try failed and another will follow: staff see why it is still queued."""
    mail = session.get(StaffMail, staff_mail_id)
    if mail is None or mail.status is not StaffMailStatus.QUEUED:
        return
    mail.attempts += 1
    mail.last_error = error[:_ERROR_CHARS]


def mark_sent(session: Session, staff_mail_id: int, subject: str = "") -> None:
    """The relay accepted the mail."""
    mail = session.get(StaffMail, staff_mail_id)
    if mail is None or mail.status is StaffMailStatus.SENT:
        return  # a redelivered task: nothing to do
    mail.attempts += 1
    if subject:
        mail.subject = subject[:500]
    _move(mail, StaffMailStatus.SENT)


def mark_failed(session: Session, staff_mail_id: int, error: str) -> None:
    """No more tries: the relay refused it or could not be reached in time."""
    mail = session.get(StaffMail, staff_mail_id)
    if mail is None or mail.status is not StaffMailStatus.QUEUED:
        return
    mail.attempts += 1
    mail.last_error = error[:_ERROR_CHARS]
    _move(mail, StaffMailStatus.FAILED)


def recent_staff_mails(
    session: Session,
    *,
    kinds: tuple[StaffMailKind, ...] | None = None,
    release_id: int | None = None,
    limit: int = 10,
) -> list[StaffMail]:
    """The latest staff mails, newest first, for the pages that queued them."""
    query = select(StaffMail).order_by(StaffMail.id.desc()).limit(limit)
    if kinds is not None:
        query = query.where(StaffMail.kind.in_(kinds))
    if release_id is not None:
        query = query.where(StaffMail.release_id == release_id)
    return list(session.scalars(query))


def opted_out_kinds(session: Session, user_id: int) -> set[NotificationKind]:
    return set(
        session.scalars(
            select(NotificationOptOut.kind).where(NotificationOptOut.user_id == user_id)
        )
    )


def set_notification_choices(session: Session, user_id: int, wanted: set[NotificationKind]) -> None:
    """Keep the user's notifications to ``wanted``; every other kind is switched off."""
    session.execute(delete(NotificationOptOut).where(NotificationOptOut.user_id == user_id))
    for kind in NotificationKind:
        if kind not in wanted:
            session.add(NotificationOptOut(user_id=user_id, kind=kind))
    session.flush()


def opted_out_users(session: Session, kind: NotificationKind) -> set[int]:
    """Ids of the users who switched ``kind`` off."""
    return set(
        session.scalars(select(NotificationOptOut.user_id).where(NotificationOptOut.kind == kind))
    )
