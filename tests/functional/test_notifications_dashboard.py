"""Workflow notifications by mail and the staff dashboard (issue 11, item 5)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.delivery import services as delivery
from distributor.delivery import tasks as engine_tasks
from distributor.mail.transport import InMemoryTransport
from distributor.notifications import tasks as notification_tasks
from distributor.notifications.models import (
    NotificationKind,
    StaffMail,
    StaffMailKind,
    StaffMailStatus,
)
from distributor.releases.models import ReleaseStatus
from distributor.releases.services import transition
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token
from tests.support.releases import make_release


@pytest.fixture()
def queued(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[int]:  # noqa: ARG001 - the app imports the task modules first
    ids: list[int] = []
    monkeypatch.setattr(notification_tasks.send_notification, "delay", ids.append)
    monkeypatch.setattr(engine_tasks.dispatch_send, "delay", lambda *a: None)
    return ids


def _deliver(app: Flask, ids: list[int], transport: InMemoryTransport) -> list[Any]:
    with app.app_context():
        for staff_mail_id in ids:
            notification_tasks.send_notification(staff_mail_id)
    return [
        email.message_from_bytes(m.message, policy=email.policy.default) for m in transport.sent
    ]


def _rows(session: Session, release_id: int) -> list[StaffMail]:
    # Only this test's release: browser tests commit real data other tests can see.
    session.expire_all()
    return list(
        session.scalars(
            select(StaffMail)
            .where(StaffMail.kind == StaffMailKind.NOTIFICATION, StaffMail.release_id == release_id)
            .order_by(StaffMail.id)
        )
    )


def test_submitting_tells_the_editors_and_sending_back_tells_the_author_with_the_comment(
    app: Flask,
    session: Session,
    make_user: Callable[..., User],
    queued: list[int],
    mail_transport: InMemoryTransport,
) -> None:
    author = make_user(Role.PRESS_OFFICER, name="Pat Author")
    editor = make_user(Role.EDITOR, name="Eve Editor")
    admin = make_user(Role.ADMIN, name="Ada Admin")
    release = make_release(session, title="Ferry timetable changes")
    release.created_by_id = author.id
    transition(session, release, ReleaseStatus.IN_REVIEW, by=author)
    session.commit()
    told = {r.to_address for r in _rows(session, release.id)}
    assert {editor.email, admin.email} <= told and author.email not in told
    # Only editors and admins (other tests' committed editors may be told as well).
    mine = [r.id for r in _rows(session, release.id) if r.to_address in (editor.email, admin.email)]
    queued[:] = [i for i in queued if i in mine]
    messages = _deliver(app, queued, mail_transport)
    assert {m["Subject"] for m in messages} == {"Review requested: Ferry timetable changes"}
    assert (
        "Pat Author submitted a release for review."
        in messages[0].get_body(("plain",)).get_content()
    )
    assert all(r.status is StaffMailStatus.SENT for r in _rows(session, release.id) if r.id in mine)

    queued.clear()
    mail_transport.sent.clear()
    transition(session, release, ReleaseStatus.DRAFT, by=editor, comment="Add the new Sunday times")
    session.commit()
    (message,) = _deliver(app, queued, mail_transport)
    assert message["To"].addresses[0].addr_spec == author.email
    assert message["Subject"] == "Sent back: Ferry timetable changes"
    body = message.get_body(("plain",)).get_content()
    assert "Add the new Sunday times" in body and "/staff/releases/" in body
    assert message["Auto-Submitted"] == "auto-generated"


def test_approval_scheduling_and_the_first_figures_reach_the_author(
    app: Flask,
    session: Session,
    settings: Settings,
    make_user: Callable[..., User],
    queued: list[int],
    mail_transport: InMemoryTransport,
) -> None:
    author = make_user(Role.PRESS_OFFICER)
    editor = make_user(Role.EDITOR)
    f.organisation(session, settings)
    release = f.release(session)
    release.created_by_id = author.id
    release.status = ReleaseStatus.IN_REVIEW
    f.audience(session, release, count=2)
    transition(session, release, ReleaseStatus.APPROVED, by=editor)
    session.commit()
    import datetime as dt

    from distributor.db import utcnow

    delivery.start_send(
        session,
        release.id,
        requested_by_id=editor.id,
        scheduled_for=utcnow() + dt.timedelta(hours=2),
    )
    session.commit()
    kinds = [r.notification_kind for r in _rows(session, release.id)]
    assert kinds == [NotificationKind.APPROVED, NotificationKind.SCHEDULED]
    # The system finishes the send: the author and the editor who started it hear of it.
    release.status = ReleaseStatus.SENDING
    transition(session, release, ReleaseStatus.SENT, by=None)
    session.commit()
    sent_rows = [
        r for r in _rows(session, release.id) if r.notification_kind is NotificationKind.SENT
    ]
    assert sorted(r.to_address for r in sent_rows) == sorted([author.email, editor.email])
    messages = _deliver(app, queued, mail_transport)
    subjects = [str(m["Subject"]).strip() for m in messages]
    assert subjects[0].startswith("Approved: ")
    assert subjects[1].startswith("Scheduled for ")
    assert subjects[2].startswith("Sent: ")
    assert "first figures" in messages[2].get_body(("plain",)).get_content()


@pytest.mark.usefixtures("app", "queued")
def test_each_user_can_switch_a_notification_off(
    client: FlaskClient,
    session: Session,
    logged_in: Callable[[Role], User],
    make_user: Callable[..., User],
) -> None:
    editor = logged_in(Role.EDITOR)
    other_editor = make_user(Role.EDITOR)
    author = make_user(Role.PRESS_OFFICER)
    session.commit()
    page = client.get("/staff/notifications/").get_data(as_text=True)
    assert page.count('type="checkbox"') == len(NotificationKind)
    token = csrf_token(client, "/staff/notifications/")
    # Untick "submitted", keep the rest.
    kept = [k.value for k in NotificationKind if k is not NotificationKind.SUBMITTED]
    client.post("/staff/notifications/", data={"csrf_token": token, "kind": kept})
    release = make_release(session)
    release.created_by_id = author.id
    transition(session, release, ReleaseStatus.IN_REVIEW, by=author)
    session.commit()
    told = [r.to_address for r in _rows(session, release.id)]
    assert other_editor.email in told and editor.email not in told


@pytest.mark.usefixtures("queued")
def test_the_dashboard_shows_queue_scheduled_sending_and_results(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    import datetime as dt

    from distributor.db import utcnow

    editor = logged_in(Role.EDITOR)
    make_release(session, title="Waiting harbour story", status=ReleaseStatus.IN_REVIEW)
    f.organisation(session, settings)
    later = f.release(session, title="Scheduled pier story")
    later.status = ReleaseStatus.APPROVED
    f.audience(session, later, count=1)
    now_release = f.release(session, title="Sending lighthouse story")
    now_release.status = ReleaseStatus.APPROVED
    f.audience(session, now_release, count=2)
    session.flush()
    delivery.start_send(
        session, later.id, requested_by_id=editor.id, scheduled_for=utcnow() + dt.timedelta(days=1)
    )
    delivery.start_send(session, now_release.id, requested_by_id=editor.id)
    session.commit()
    page = client.get("/staff/").get_data(as_text=True)
    for testid, expected in (
        ("review-queue", "Waiting harbour story"),
        ("scheduled", "Scheduled pier story"),
        ("in-progress", "Sending lighthouse story"),
        ("recent-results", "Sending lighthouse story"),
    ):
        start = page.index(f'data-testid="{testid}"')
        section = page[start : page.index("</section>", start)]
        assert expected in section, testid


def test_a_muted_session_notifies_nobody(
    session: Session, make_user: Callable[..., User], queued: list[int]
) -> None:
    from distributor.notifications.handlers import MUTED

    make_user(Role.EDITOR)
    author = make_user(Role.PRESS_OFFICER)
    release = make_release(session)
    session.info[MUTED] = True  # what the demo seed does
    try:
        transition(session, release, ReleaseStatus.IN_REVIEW, by=author)
        session.commit()
    finally:
        session.info.pop(MUTED)
    assert _rows(session, release.id) == [] and queued == []
