"""Sending asks first: the confirmation restates the send, red items need an override, and
colleagues get test sends whose failures the staff pages show (issue 11, items 1 and 2)."""

from __future__ import annotations

import datetime as dt
import re
import smtplib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.admin import tasks as admin_tasks
from distributor.delivery import mail_tasks
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.checklist import DnsUnavailable
from distributor.delivery.models import Send, SendStatus
from distributor.mail.transport import InMemoryTransport
from distributor.notifications.models import StaffMail, StaffMailKind, StaffMailStatus
from distributor.releases.models import Release, ReleaseStatus
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token


class Resolver:
    """DNS that answers, with no SPF or DMARC: both checklist items are red ("Fix")."""

    def __init__(self, *, reachable: bool) -> None:
        self.reachable = reachable

    def txt(self, name: str) -> list[str]:
        if not self.reachable:
            raise DnsUnavailable("no network in tests")
        return []


@pytest.fixture()
def queued(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:  # noqa: ARG001 - the app binds the Celery tasks before they are patched
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        engine_tasks.dispatch_send, "delay", lambda *a: calls.append(("dispatch", a))
    )
    monkeypatch.setattr(
        mail_tasks.send_release_test, "delay", lambda *a: calls.append(("test_send", a))
    )
    monkeypatch.setattr(
        admin_tasks.send_test_email, "delay", lambda *a: calls.append(("test_email", a))
    )
    return calls


@pytest.fixture()
def release(app: Flask, session: Session, settings: Settings) -> Release:
    app.extensions["distributor.dns_resolver"] = Resolver(reachable=False)
    f.organisation(session, settings)
    r = f.release(session, embargo_until=dt.datetime(2030, 12, 3, 9, 0, tzinfo=dt.UTC))
    r.status = ReleaseStatus.APPROVED
    f.audience(session, r, count=3, digest=1)
    session.commit()
    return r


def _send(session: Session, release: Release) -> Send | None:
    session.expire_all()
    return session.scalar(select(Send).where(Send.release_id == release.id))


def _post(client: FlaskClient, url: str, page: str, **data: Any) -> Any:
    return client.post(url, data={"csrf_token": csrf_token(client, page), **data})


@pytest.mark.usefixtures("queued")
def test_send_page_leads_to_a_confirmation_that_restates_the_send(
    client: FlaskClient, logged_in: Callable[[Role], User], release: Release
) -> None:
    logged_in(Role.EDITOR)
    page = client.get(f"/staff/releases/{release.id}/send").get_data(as_text=True)
    assert f'href="/staff/releases/{release.id}/send/confirm"' in page
    assert f'action="/staff/releases/{release.id}/send/now"' not in page  # no one-click send
    confirm = client.get(f"/staff/releases/{release.id}/send/confirm").get_data(as_text=True)
    assert re.search(r"<strong>3</strong> journalists get it by email, and 1 in", confirm)
    assert "embargoed until 03 Dec 2030 09:00 GMT" in confirm
    assert "Subject: Embargoed to 3 Dec 09:00 GMT: Sea wall to be raised before winter" in confirm
    assert 'data-testid="confirm-red"' not in confirm  # DNS unreachable: "could not check"
    assert "Could not check" in confirm
    assert "Send now to 3 journalists" in confirm


def test_a_send_without_the_confirmation_is_refused(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
    queued: list[Any],
) -> None:
    logged_in(Role.EDITOR)
    page = f"/staff/releases/{release.id}/send"
    response = _post(client, f"{page}/now", page)
    assert response.status_code == 303
    assert _send(session, release) is None and queued == []
    assert "Confirm the send first" in client.get(page).get_data(as_text=True)
    _post(client, f"{page}/now", page, confirmed="yes")
    send = _send(session, release)
    assert send is not None and send.status is SendStatus.RUNNING


@pytest.mark.usefixtures("queued")
def test_red_checklist_items_need_an_explicit_override(
    app: Flask,
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
) -> None:
    app.extensions["distributor.dns_resolver"] = Resolver(reachable=True)
    logged_in(Role.EDITOR)
    url = f"/staff/releases/{release.id}/send/confirm"
    confirm = client.get(url).get_data(as_text=True)
    assert 'data-testid="confirm-red"' in confirm
    assert "No SPF record at" in confirm and "No DMARC record at" in confirm
    token = re.search(r'name="override" value="([0-9a-f]+)" required', confirm)
    assert token, "the override tick is required"
    now = f"/staff/releases/{release.id}/send/now"
    _post(client, now, url, confirmed="yes")
    assert _send(session, release) is None
    assert "Tick the override" in client.get(url).get_data(as_text=True)
    _post(client, now, url, confirmed="yes", override="0" * 16)  # a stale or forged tick
    assert _send(session, release) is None
    _post(client, now, url, confirmed="yes", override=token.group(1))
    send = _send(session, release)
    assert send is not None and send.status is SendStatus.RUNNING


@pytest.mark.usefixtures("queued")
def test_schedule_is_confirmed_with_its_time(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
) -> None:
    logged_in(Role.EDITOR)
    url = f"/staff/releases/{release.id}/send/confirm?scheduled_for=2030-07-01T09:30"
    confirm = client.get(url).get_data(as_text=True)
    assert "Confirm the schedule" in confirm and "01 Jul 2030 09:30 BST" in confirm
    assert 'name="scheduled_for" value="2030-07-01T09:30"' in confirm
    _post(
        client,
        f"/staff/releases/{release.id}/send/schedule",
        url,
        confirmed="yes",
        scheduled_for="2030-07-01T09:30",
    )
    send = _send(session, release)
    assert send is not None and send.status is SendStatus.SCHEDULED
    assert send.scheduled_for == dt.datetime(2030, 7, 1, 8, 30, tzinfo=dt.UTC)


def test_press_officer_cannot_open_the_confirmation(
    client: FlaskClient, logged_in: Callable[[Role], User], release: Release
) -> None:
    logged_in(Role.PRESS_OFFICER)
    assert client.get(f"/staff/releases/{release.id}/send/confirm").status_code == 403


def test_test_send_to_colleagues_records_each_mail(
    app: Flask,
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    make_user: Callable[..., User],
    release: Release,
    session: Session,
    queued: list[Any],
    mail_transport: InMemoryTransport,
) -> None:
    me = logged_in(Role.EDITOR)
    colleague = make_user(Role.PRESS_OFFICER, name="Colin Colleague")
    session.commit()
    confirm = client.get(f"/staff/releases/{release.id}/send/confirm").get_data(as_text=True)
    assert "Send a test to my colleagues" in confirm and "Colin Colleague" in confirm
    response = _post(
        client,
        f"/staff/releases/{release.id}/email-preview/test-send",
        f"/staff/releases/{release.id}/send/confirm",
        user_id=[str(me.id), str(colleague.id)],
        back="confirm",
    )
    assert response.status_code == 303 and response.location.endswith("/send/confirm")
    assert sorted(a[1] for _, a in queued) == sorted([me.id, colleague.id])
    with app.app_context():
        for _, args in queued:
            mail_tasks.send_release_test(*args)
    assert sorted(m.recipients[0] for m in mail_transport.sent) == sorted(
        [me.email, colleague.email]
    )
    session.expire_all()
    rows = session.scalars(select(StaffMail).where(StaffMail.release_id == release.id)).all()
    assert {r.status for r in rows} == {StaffMailStatus.SENT}
    assert all(r.subject.startswith("Embargoed to") for r in rows)
    page = client.get(f"/staff/releases/{release.id}/send/confirm").get_data(as_text=True)
    assert page.count('class="badge ok">Sent<') == 2


class RefusingTransport:
    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        raise smtplib.SMTPRecipientsRefused({recipients[0]: (550, b"5.1.1 no such user")})


def test_a_refused_test_email_shows_as_failed_with_the_reason(
    app: Flask,
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    session: Session,
    queued: list[Any],
) -> None:
    logged_in(Role.ADMIN)
    _post(client, "/staff/test-email", "/staff/test-email", to_address="desk@example.org")
    ((_, args),) = queued
    app.extensions["distributor.mail_transport"] = RefusingTransport()
    with app.app_context():
        admin_tasks.send_test_email(*args)
    session.expire_all()
    row = session.scalar(select(StaffMail).where(StaffMail.kind == StaffMailKind.TEST_EMAIL))
    assert row is not None and row.status is StaffMailStatus.FAILED
    page = client.get("/staff/test-email").get_data(as_text=True)
    assert "Failed" in page and "550 5.1.1 no such user" in page
