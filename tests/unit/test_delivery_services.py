"""Staff controls for a send: each one safe to click twice, and what the pages show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience.models import DeliveryMode, SuppressionReason
from distributor.audience.services import suppress
from distributor.db import utcnow
from distributor.delivery import services
from distributor.delivery.models import Delivery, DeliveryStatus, SendStatus
from distributor.errors import Conflict, Forbidden
from distributor.releases.models import Release, ReleaseStatus
from tests.support import delivery_factories as f
from tests.support.delivery_seed import approved_release, person, subscribe


def _release(session: Session, n: int = 3, *, digest: int = 0) -> Release:
    beat = f.beat(session, "Climate")
    for i in range(n):
        subscribe(session, person(session, f"desk{i}@paper{i}.example"), [beat])
    for i in range(digest):
        j = person(session, f"digest{i}@weekly.example", mode=DeliveryMode.DAILY_DIGEST)
        subscribe(session, j, [beat])
    return approved_release(session, beats=[beat])


def _count(session: Session, release_id: int, status: DeliveryStatus | None = None) -> int:
    q = select(func.count(Delivery.id)).where(Delivery.release_id == release_id)
    if status is not None:
        q = q.where(Delivery.status == status)
    return int(session.scalar(q) or 0)


def _set(session: Session, release_id: int, status: DeliveryStatus, **values: object) -> None:
    session.execute(
        update(Delivery).where(Delivery.release_id == release_id).values(status=status, **values)
    )


@pytest.fixture()
def editor(make_user: Callable[..., User]) -> User:
    return make_user(Role.EDITOR)


def test_send_now_freezes_recipients_once_however_often_it_is_clicked(
    session: Session, editor: User
) -> None:
    release = _release(session, 3, digest=1)
    first = services.start_send(session, release.id, requested_by_id=editor.id)
    second = services.start_send(session, release.id, requested_by_id=editor.id)
    assert first.id == second.id
    assert first.status is SendStatus.RUNNING
    assert first.recipient_count == 4
    assert _count(session, release.id, DeliveryStatus.QUEUED) == 3
    assert _count(session, release.id, DeliveryStatus.DIGEST) == 1
    assert release.status is ReleaseStatus.SENDING


def test_a_press_officer_may_not_send(session: Session, make_user: Callable[..., User]) -> None:
    release = _release(session, 1)
    officer = make_user(Role.PRESS_OFFICER)
    with pytest.raises(Forbidden, match="may not"):
        services.start_send(session, release.id, requested_by_id=officer.id)
    assert _count(session, release.id) == 0


def test_a_scheduled_send_waits_for_the_sweep(session: Session, editor: User) -> None:
    release = _release(session, 2)
    when = utcnow() + dt.timedelta(hours=2)
    send = services.start_send(session, release.id, requested_by_id=editor.id, scheduled_for=when)
    again = services.start_send(session, release.id, requested_by_id=editor.id, scheduled_for=when)
    assert send.id == again.id
    assert send.status is SendStatus.SCHEDULED
    assert release.status is ReleaseStatus.SCHEDULED
    assert _count(session, release.id) == 0
    assert not services.start_due_scheduled(session, send.id, utcnow())
    assert services.start_due_scheduled(session, send.id, when + dt.timedelta(seconds=1))
    assert send.status is SendStatus.RUNNING
    assert release.status is ReleaseStatus.SENDING
    assert _count(session, release.id, DeliveryStatus.QUEUED) == 2


def test_pause_resume_and_cancel_are_idempotent_and_spare_sent_rows(
    session: Session, editor: User
) -> None:
    release = _release(session, 4)
    send = services.start_send(session, release.id, requested_by_id=editor.id)
    first_row = session.scalar(
        select(Delivery).where(Delivery.release_id == release.id).order_by(Delivery.id)
    )
    assert first_row is not None
    first_row.status = DeliveryStatus.SENT
    session.flush()
    assert services.pause_send(session, release.id).status is SendStatus.PAUSED
    assert services.pause_send(session, release.id).status is SendStatus.PAUSED
    assert services.resume_send(session, release.id).status is SendStatus.RUNNING
    assert services.resume_send(session, release.id).status is SendStatus.RUNNING
    assert services.cancel_send(session, release.id).status is SendStatus.CANCELLED
    assert services.cancel_send(session, release.id).status is SendStatus.CANCELLED
    assert _count(session, release.id, DeliveryStatus.SENT) == 1
    assert _count(session, release.id, DeliveryStatus.CANCELLED) == 3
    assert release.status is ReleaseStatus.APPROVED
    with pytest.raises(Conflict):
        services.resume_send(session, release.id)
    # Sending again later picks up what was cancelled, and nothing that went out.
    services.start_send(session, release.id, requested_by_id=editor.id)
    assert send.status is SendStatus.RUNNING
    assert _count(session, release.id, DeliveryStatus.QUEUED) == 3


def test_a_send_with_only_digest_readers_finishes_at_once(session: Session, editor: User) -> None:
    release = _release(session, 0, digest=2)
    send = services.start_send(session, release.id, requested_by_id=editor.id)
    assert send.status is SendStatus.FINISHED
    assert release.status is ReleaseStatus.SENT


def test_finish_if_done_moves_the_release_once(session: Session, editor: User) -> None:
    release = _release(session, 2)
    send = services.start_send(session, release.id, requested_by_id=editor.id)
    assert not services.finish_if_done(session, send.id)
    _set(session, release.id, DeliveryStatus.SENT)
    assert services.finish_if_done(session, send.id)
    assert not services.finish_if_done(session, send.id)
    session.refresh(release)
    assert release.status is ReleaseStatus.SENT


def test_retry_failed_skips_suppressed_and_policy_rejections(
    session: Session, editor: User
) -> None:
    release = _release(session, 3)
    send = services.start_send(session, release.id, requested_by_id=editor.id)
    rows = list(
        session.scalars(
            select(Delivery).where(Delivery.release_id == release.id).order_by(Delivery.id)
        )
    )
    for row in rows:
        row.status = DeliveryStatus.FAILED
        row.attempts = 3
    rows[1].is_policy_rejection = True
    assert rows[2].email is not None
    suppress(session, rows[2].email.upper(), SuppressionReason.HARD_BOUNCE)
    session.flush()
    services.finish_if_done(session, send.id)
    assert services.retry_failed(session, release.id) == 1
    assert services.retry_failed(session, release.id) == 0
    session.refresh(rows[0])
    assert rows[0].status is DeliveryStatus.QUEUED
    assert rows[0].first_attempt_at is None  # a fresh lifetime
    session.refresh(send)
    assert send.status is SendStatus.RUNNING


def test_in_doubt_rows_are_listed_and_resent_only_when_staff_ask(
    session: Session, editor: User
) -> None:
    release = _release(session, 3)
    services.start_send(session, release.id, requested_by_id=editor.id)
    _set(session, release.id, DeliveryStatus.IN_DOUBT)
    unknown = services.list_in_doubt(session, release.id)
    assert len(unknown) == 3
    assert services.resend_in_doubt(session, release.id, [unknown[0].id, 999_999]) == 1
    assert services.resend_in_doubt(session, release.id, [unknown[0].id]) == 0
    assert len(services.list_in_doubt(session, release.id)) == 2


def test_progress_counts_states_and_estimates_time_left(session: Session, editor: User) -> None:
    release = _release(session, 4)
    assert services.send_progress(session, release.id).status is None
    services.start_send(session, release.id, requested_by_id=editor.id)
    rows = list(session.scalars(select(Delivery).where(Delivery.release_id == release.id)))
    for row in rows[:2]:
        row.status = DeliveryStatus.SENT
        row.sent_at = utcnow()
    session.flush()
    progress = services.send_progress(session, release.id)
    assert progress.status == "running"
    assert progress.counts["sent"] == 2 and progress.counts["queued"] == 2
    assert (progress.total, progress.done) == (4, 2)
    assert progress.rate_per_second > 0
    assert progress.eta_seconds is not None and progress.eta_seconds > 0
