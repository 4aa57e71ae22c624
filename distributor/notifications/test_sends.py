"""Test sends of a release mail to colleagues before the real send (mail to staff, recorded)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.notifications.models import StaffMailKind
from distributor.notifications.services import record_staff_mail
from distributor.tasks_api import TaskRef, enqueue_after_commit

SEND_RELEASE_TEST = TaskRef("delivery.send_release_test")


def colleagues(session: Session) -> list[User]:
    """Active staff, by name: who a test send can go to."""
    return list(session.scalars(select(User).where(User.is_active.is_(True)).order_by(User.name)))


def queue_release_tests(
    session: Session, release_id: int, *, user_ids: list[int], requested_by_id: int
) -> list[str]:
    """Queue one test mail per active colleague after commit; return their addresses."""
    users = session.scalars(
        select(User).where(User.id.in_(user_ids), User.is_active.is_(True)).order_by(User.name)
    )
    addresses = []
    for user in users:
        row = record_staff_mail(
            session,
            kind=StaffMailKind.RELEASE_TEST,
            to_address=user.email,
            release_id=release_id,
            requested_by_id=requested_by_id,
        )
        enqueue_after_commit(session, SEND_RELEASE_TEST, release_id, user.id, row.id)
        addresses.append(user.email)
    return addresses
