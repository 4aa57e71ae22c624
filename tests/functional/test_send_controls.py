"""The send page and its controls, through the test client, for each staff role."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.delivery import mail_tasks
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.checklist import DnsUnavailable
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.mail.transport import InMemoryTransport
from distributor.releases.models import Release, ReleaseStatus
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token


class FakeResolver:
    def __init__(self, records: dict[str, list[str]] | None, *, reachable: bool = True) -> None:
        self.records = records or {}
        self.reachable = reachable
        self.asked: list[str] = []

    def txt(self, name: str) -> list[str]:
        self.asked.append(name)
        if not self.reachable:
            raise DnsUnavailable("no network in tests")
        return self.records.get(name, [])


@pytest.fixture()
def queued(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:  # noqa: ARG001 - the app binds the Celery tasks before they are patched
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        engine_tasks.dispatch_send, "delay", lambda *a: calls.append(("dispatch", a))
    )
    monkeypatch.setattr(
        mail_tasks.send_release_test, "delay", lambda *a: calls.append(("test_send", a))
    )
    return calls


@pytest.fixture()
def release(app: Flask, session: Session, settings: Settings) -> Release:
    app.extensions["distributor.dns_resolver"] = FakeResolver(None, reachable=False)
    f.organisation(session, settings)
    r = f.release(session)
    r.status = ReleaseStatus.APPROVED
    f.audience(session, r, count=3, digest=1)
    session.commit()
    return r


def page(client: FlaskClient, release: Release) -> str:
    response = client.get(f"/staff/releases/{release.id}/send")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post(client: FlaskClient, release: Release, action: str, **data: Any) -> Any:
    token = csrf_token(client, f"/staff/releases/{release.id}/send")
    if action in ("now", "schedule"):
        data.setdefault("confirmed", "yes")  # as the confirmation page posts it
    return client.post(
        f"/staff/releases/{release.id}/send/{action}", data={"csrf_token": token, **data}
    )


def send_of(session: Session, release: Release) -> Send | None:
    session.expire_all()
    return session.scalar(select(Send).where(Send.release_id == release.id))


def test_press_officer_sees_audience_and_checklist_but_cannot_send(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
    queued: list[Any],
) -> None:
    logged_in(Role.PRESS_OFFICER)
    html = page(client, release)
    assert 'data-testid="audience-total">3<' in html
    assert "<strong>1</strong> in their daily digest" in html
    assert "Only editors and admins can send" in html
    assert "Send now" not in html
    assert "Could not check" in html  # DNS unreachable in tests: said, not failed
    for action in ("now", "pause", "resume", "cancel", "retry-failed", "schedule"):
        assert post(client, release, action).status_code == 403, action
    assert send_of(session, release) is None
    assert queued == []


def test_editor_sends_once_however_often_they_click(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
    queued: list[Any],
) -> None:
    logged_in(Role.EDITOR)
    assert "Send now to 3" in page(client, release)
    first = post(client, release, "now")
    second = post(client, release, "now")
    assert first.status_code == second.status_code == 303
    send = send_of(session, release)
    assert send is not None and send.status is SendStatus.RUNNING
    deliveries = session.scalar(
        select(func.count(Delivery.id)).where(Delivery.release_id == release.id)
    )
    assert deliveries == 4  # three now, one for the digest
    assert session.scalar(select(func.count(Send.id)).where(Send.release_id == release.id)) == 1
    assert [c[0] for c in queued] == ["dispatch"]

    html = page(client, release)
    assert "Pause" in html and "Cancel send" in html and "Send now" not in html

    progress = client.get(f"/staff/releases/{release.id}/send/progress.json").get_json()
    assert progress["status"] == "running"
    assert progress["total"] == 4
    assert progress["counts"]["queued"] == 3 and progress["counts"]["digest"] == 1


@pytest.mark.usefixtures("queued")
def test_pause_resume_cancel_are_safe_twice(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
) -> None:
    logged_in(Role.ADMIN)
    post(client, release, "now")
    for action, status in (
        ("pause", SendStatus.PAUSED),
        ("resume", SendStatus.RUNNING),
        ("cancel", SendStatus.CANCELLED),
    ):
        for _ in range(2):
            assert post(client, release, action).status_code == 303
            send = send_of(session, release)
            assert send is not None and send.status is status, action
    session.expire_all()
    statuses = set(
        session.scalars(select(Delivery.status).where(Delivery.release_id == release.id))
    )
    assert statuses == {DeliveryStatus.CANCELLED, DeliveryStatus.DIGEST}
    # Pausing a cancelled send is refused with a message, not an error page.
    response = post(client, release, "pause")
    assert response.status_code == 303
    assert "cannot be paused" in client.get(response.location).get_data(as_text=True)


@pytest.mark.usefixtures("queued")
def test_retry_failed_and_resend_in_doubt(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
) -> None:
    logged_in(Role.EDITOR)
    post(client, release, "now")
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.release_id == release.id, Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
    ).all()
    rows[0].status = DeliveryStatus.FAILED
    rows[1].status = DeliveryStatus.IN_DOUBT
    rows[1].smtp_response = "connection lost after DATA"
    rows[2].status = DeliveryStatus.SENT
    session.flush()
    send = send_of(session, release)
    assert send is not None
    send.status = SendStatus.FINISHED
    session.commit()

    html = page(client, release)
    in_doubt = rows[1].email
    assert in_doubt is not None
    assert "In doubt (1)" in html and in_doubt in html
    assert "Retry 1 failed" in html
    assert post(client, release, "retry-failed").status_code == 303
    assert post(client, release, "retry-failed").status_code == 303
    session.expire_all()
    assert session.get(Delivery, rows[0].id).status is DeliveryStatus.QUEUED

    assert post(client, release, "resend-in-doubt").status_code == 303  # nothing ticked
    assert session.get(Delivery, rows[1].id).status is DeliveryStatus.IN_DOUBT
    post(client, release, "resend-in-doubt", delivery_id=str(rows[1].id))
    session.expire_all()
    assert session.get(Delivery, rows[1].id).status is DeliveryStatus.QUEUED
    assert session.get(Delivery, rows[2].id).status is DeliveryStatus.SENT


def test_schedule_takes_the_time_in_the_org_zone(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
    queued: list[Any],
) -> None:
    logged_in(Role.EDITOR)
    response = post(client, release, "schedule", scheduled_for="2030-07-01T09:30")
    assert response.status_code == 303
    post(client, release, "schedule", scheduled_for="2030-07-01T09:30")
    send = send_of(session, release)
    assert send is not None and send.status is SendStatus.SCHEDULED
    # 09:30 in London in July is 08:30 UTC (BST).
    assert send.scheduled_for == dt.datetime(2030, 7, 1, 8, 30, tzinfo=dt.UTC)
    assert queued == []
    assert "Scheduled for 01 Jul 2030 09:30 BST" in page(client, release)


def test_checklist_reads_spf_dkim_dmarc_from_dns(
    app: Flask,
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    settings: Settings,
) -> None:
    domain = settings.from_domain
    resolver = FakeResolver({domain: ["v=spf1 include:_spf.example -all"]})
    app.extensions["distributor.dns_resolver"] = resolver
    logged_in(Role.EDITOR)
    html = page(client, release)
    assert "v=spf1 include:_spf.example -all" in html
    assert f"No DMARC record at _dmarc.{domain}" in html
    assert "Signing is off" in html  # no DKIM selector configured in tests
    assert set(resolver.asked) == {domain, f"_dmarc.{domain}"}


def test_preview_shows_both_widths_and_the_text_part(
    client: FlaskClient, logged_in: Callable[[Role], User], release: Release
) -> None:
    logged_in(Role.PRESS_OFFICER)
    html = client.get(f"/staff/releases/{release.id}/email-preview").get_data(as_text=True)
    assert html.count("<iframe") == 2 and html.count("sandbox") >= 2
    assert "Portmere&#39;s sea wall will be raised by 1.2 metres" in html  # the text part
    assert "List-Unsubscribe-Post" in html
    frame = client.get(f"/staff/releases/{release.id}/email-preview/html")
    assert frame.status_code == 200
    assert frame.headers["Content-Security-Policy"].startswith("sandbox")
    assert "Sea wall to be raised before winter" in frame.get_data(as_text=True)


def test_test_send_goes_to_the_current_user(
    app: Flask,
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    queued: list[Any],
    mail_transport: InMemoryTransport,
) -> None:
    user = logged_in(Role.PRESS_OFFICER)
    token = csrf_token(client, f"/staff/releases/{release.id}/email-preview")
    response = client.post(
        f"/staff/releases/{release.id}/email-preview/test-send", data={"csrf_token": token}
    )
    assert response.status_code == 303
    ((name, (release_id, user_id, staff_mail_id)),) = queued
    assert (name, release_id, user_id) == ("test_send", release.id, user.id)
    with app.app_context():
        mail_tasks.send_release_test(release.id, user.id, staff_mail_id)
    (sent,) = mail_transport.sent
    assert sent.recipients == [user.email]
    message = email.message_from_bytes(sent.message, policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == user.email
    assert message["Subject"] == "Sea wall to be raised before winter"


@pytest.mark.usefixtures("queued")
def test_the_send_page_groups_why_messages_are_waiting(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    release: Release,
    session: Session,
) -> None:
    logged_in(Role.EDITOR)
    post(client, release, "now")
    rows = session.scalars(
        select(Delivery).where(Delivery.release_id == release.id).order_by(Delivery.id)
    ).all()
    # Two rows the relay sent back, one a domain defers: each with the reply that decided it.
    relay_reply = (
        "connect 421 4.7.0 relay.test Error: too many connections from 127.0.0.1 "
        "[relay 127.0.0.1:25: about the relay, not the recipient; queued again, paused 2 s]"
    )
    for row in rows[:2]:
        row.smtp_response, row.smtp_code = relay_reply, 421
    rows[2].status = DeliveryStatus.DEFERRED
    rows[2].smtp_code = 451
    rows[2].smtp_response = "rcpt 451 4.7.1 Greylisted, try later"
    session.commit()

    html = page(client, release)
    assert "Why messages are waiting" in html
    assert (
        "2 recipients back in the queue since" in html
        and "connect 421 4.7.0 relay.test Error: too many connections from 127.0.0.1" in html
    )
    assert f"{rows[2].recipient_domain} deferring 4.7.1 since" in html
    live = client.get(f"/staff/releases/{release.id}/send/progress.json").get_json()
    texts = [r["text"] for r in live["reasons"]]
    assert [r["kind"] for r in live["reasons"]] == ["waiting", "domain"]
    assert texts[0].startswith("2 recipients back in the queue since ")
    assert texts[0].endswith(
        ": connect 421 4.7.0 relay.test Error: too many connections from 127.0.0.1"
    )
    assert "1 recipient: rcpt 451 4.7.1 Greylisted, try later" in texts[1]
