"""Findings 2 and 6: the confirmation mail echoes nothing typed into the form, and a confirm
link works once and never undoes a later unsubscribe."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience import consent, preferences, services
from distributor.audience.models import (
    Beat,
    Journalist,
    SubscriptionStatus,
    SuppressionLift,
    SuppressionReason,
)
from distributor.db import Database, after_commit
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.support.forms import csrf_token

PHISH = "URGENT: verify at https://evil.example/login"


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []

    def record(session: Session, _task: Any, *args: Any) -> None:
        after_commit(session, lambda: sent.append(args[0]))

    monkeypatch.setattr(consent, "enqueue_after_commit", record)
    return sent


@pytest.fixture()
def beat(session: Session) -> Beat:
    b = Beat(name="Climate", slug="climate-sec", description="", is_public=True)
    session.add(b)
    session.commit()
    return b


def _subscribe(client: FlaskClient, address: str, beat: Beat, name: str = "Sam") -> None:
    token = csrf_token(client, "/subscribe")
    r = client.post(
        "/subscribe",
        data={"email": address, "name": name, "beats": [beat.id], "csrf_token": token},
    )
    assert r.status_code == 200


def _mail(db: Database, settings: Settings, request_id: int) -> EmailMessage:
    transport = InMemoryTransport()
    assert consent.deliver_confirmation(
        db, request_id, settings=settings, renderer=EmailRenderer(), transport=transport
    )
    message = email.message_from_bytes(transport.sent[-1].message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _confirm_path(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    match = re.search(r"http://localhost(/subscribe/confirm/\S+)", text.get_content())
    assert match
    return match.group(1)


def _press_confirm(client: FlaskClient, path: str) -> Any:
    page = client.get(path)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(True))
    assert token, page.get_data(True)
    return client.post(path, data={"csrf_token": token.group(1)})


def test_confirmation_mail_carries_no_text_from_the_form(
    client: FlaskClient, db: Database, settings: Settings, beat: Beat, queued: list[int]
) -> None:
    _subscribe(client, "victim@example.org", beat, name=PHISH)
    message = _mail(db, settings, queued[0])
    for part in message.walk():
        if part.get_content_maintype() == "text":
            body = part.get_content()
            assert "evil.example" not in body and "URGENT" not in body
    assert "evil.example" not in str(message["Subject"])


def test_confirm_link_kept_after_unsubscribe_cannot_resubscribe(
    client: FlaskClient,
    db: Database,
    session: Session,
    settings: Settings,
    beat: Beat,
    queued: list[int],
) -> None:
    _subscribe(client, "leaver@example.org", beat)
    path = _confirm_path(_mail(db, settings, queued[0]))
    assert b"You are subscribed" in _press_confirm(client, path).data
    journalist = session.scalar(select(Journalist).where(Journalist.email == "leaver@example.org"))
    assert journalist is not None
    preferences.unsubscribe_all(session, journalist.id, note="test")
    session.commit()

    r = _press_confirm(client, path)
    session.expire_all()
    assert r.status_code in (200, 400)
    assert services.is_suppressed(session, "leaver@example.org")
    assert {s.status for s in journalist.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}


def test_old_unused_link_cannot_lift_a_later_unsubscribe(
    client: FlaskClient,
    db: Database,
    session: Session,
    settings: Settings,
    beat: Beat,
    queued: list[int],
) -> None:
    _subscribe(client, "late@example.org", beat)
    path = _confirm_path(_mail(db, settings, queued[0]))
    services.suppress(session, "late@example.org", SuppressionReason.COMPLAINT)
    session.commit()
    r = _press_confirm(client, path)
    assert r.status_code == 400
    assert services.is_suppressed(session, "late@example.org")


def test_new_double_opt_in_lifts_a_complaint_and_is_recorded(
    client: FlaskClient,
    db: Database,
    session: Session,
    settings: Settings,
    beat: Beat,
    queued: list[int],
) -> None:
    services.suppress(session, "back@example.org", SuppressionReason.COMPLAINT)
    session.commit()
    _subscribe(client, "back@example.org", beat)
    assert queued, "a complainer may opt in again, by double opt-in only"
    path = _confirm_path(_mail(db, settings, queued[0]))
    assert b"You are subscribed" in _press_confirm(client, path).data
    session.expire_all()
    assert not services.is_suppressed(session, "back@example.org")
    lift = session.scalar(select(SuppressionLift))
    assert lift is not None and lift.lifted_by_id is None
    assert lift.reason == SuppressionReason.COMPLAINT and "double opt-in" in lift.justification
