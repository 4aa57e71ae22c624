"""Who hears about a release's move, and by which mail (issue 11: nobody was told anything).

- submitted for review: every active editor and admin but the one who submitted;
- approved, or sent back with the editor's comment: the author;
- scheduled: the author, and whoever requested the send if someone else;
- sent: the author and whoever started the send, with the first figures.

Each person can switch each kind off (``NotificationOptOut``). The actor is never told about
their own move. Mail is queued after the transaction commits, one staff-mail row each. A
session with ``session.info[MUTED]`` set (the demo seed, imports of history) notifies nobody.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.notifications.models import NotificationKind, StaffMailKind
from distributor.notifications.services import opted_out_users, record_staff_mail
from distributor.releases.models import Release, ReleaseStatus
from distributor.signals import release_moved
from distributor.tasks_api import TaskRef, enqueue_after_commit

SEND_NOTIFICATION = TaskRef("notifications.send_notification")
MUTED = "notifications_muted"


def kind_of_move(from_status: ReleaseStatus, to_status: ReleaseStatus) -> NotificationKind | None:
    if to_status is ReleaseStatus.IN_REVIEW:
        return NotificationKind.SUBMITTED
    if from_status is ReleaseStatus.IN_REVIEW and to_status is ReleaseStatus.APPROVED:
        return NotificationKind.APPROVED
    if from_status is ReleaseStatus.IN_REVIEW and to_status is ReleaseStatus.DRAFT:
        return NotificationKind.SENT_BACK
    if to_status is ReleaseStatus.SCHEDULED:
        return NotificationKind.SCHEDULED
    if to_status is ReleaseStatus.SENT:
        return NotificationKind.SENT
    return None


def _send_requester(session: Session, release_id: int) -> int | None:
    from distributor.delivery.models import Send  # delivery depends on releases, not on us

    return session.scalar(select(Send.requested_by_id).where(Send.release_id == release_id))


def recipients_for(
    session: Session, release: Release, kind: NotificationKind, by: User | None
) -> list[User]:
    """The people to tell about ``kind`` happening to ``release``, minus the actor."""
    if kind is NotificationKind.SUBMITTED:
        users = list(
            session.scalars(
                select(User).where(
                    User.is_active.is_(True), User.role.in_([Role.EDITOR, Role.ADMIN])
                )
            )
        )
    else:
        ids = {release.created_by_id}
        if kind in (NotificationKind.SCHEDULED, NotificationKind.SENT):
            ids.add(_send_requester(session, release.id))
        wanted = [i for i in ids if i is not None]
        users = list(
            session.scalars(select(User).where(User.id.in_(wanted), User.is_active.is_(True)))
        )
    muted = opted_out_users(session, kind)
    actor = by.id if by is not None else None
    return sorted((u for u in users if u.id != actor and u.id not in muted), key=lambda u: u.email)


def on_release_moved(
    release: Release,
    *,
    session: Session,
    from_status: ReleaseStatus,
    to_status: ReleaseStatus,
    by: User | None,
    comment: str,
    **_: Any,
) -> None:
    """Queue one notification mail per person concerned (sent after commit)."""
    kind = kind_of_move(from_status, to_status)
    if kind is None or session.info.get(MUTED):
        return
    for user in recipients_for(session, release, kind, by):
        row = record_staff_mail(
            session,
            kind=StaffMailKind.NOTIFICATION,
            to_address=user.email,
            release_id=release.id,
            requested_by_id=by.id if by is not None else None,
            notification_kind=kind,
            note=comment.strip() if kind is NotificationKind.SENT_BACK else "",
        )
        enqueue_after_commit(session, SEND_NOTIFICATION, row.id)


def connect() -> None:
    release_moved.connect(on_release_moved, weak=False)
