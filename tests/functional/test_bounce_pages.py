"""Admins read recent bounces and complaints, the policy-rejection flags and the raw message."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.bounces.services import purge_raw, receive_message
from distributor.db import utcnow
from distributor.settings import Settings
from tests.support.bounces import delivery, sample


def test_admin_reads_bounces_complaints_and_the_raw_message(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    delivery(session, email="m.okafor@northwind-news.example", token="pfx7Qk2LmN9v")
    delivery(session, email="kofi.mensah@gmail.com", token="gdm4Xc8Vb2Nm")
    delivery(session, email="lena.voss@yahoo.com", token="yah3Mn7Bv5Cx")
    hard = receive_message(session, settings, source="smtp", raw=sample("postfix_user_unknown.eml"))
    receive_message(session, settings, source="smtp", raw=sample("gmail_dmarc_policy.eml"))
    receive_message(session, settings, source="imap", raw=sample("yahoo_arf_complaint.eml"))
    receive_message(session, settings, source="smtp", raw=sample("vacation_rfc3834.eml"))
    session.commit()
    logged_in(Role.ADMIN)

    page = client.get("/staff/bounces")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "m.okafor@northwind-news.example" in html
    assert "5.1.1" in html and "User unknown" in html
    assert "suppressed" in html
    assert "Policy rejections" in html
    assert "5.7.26 550-5.7.26 Unauthenticated email from harbourlight.example" in html
    assert "lena.voss@yahoo.com" in html and "Yahoo!-Mail-Feedback/2.0" in html
    assert "auto reply" in html
    assert f"/staff/bounces/messages/{hard.id}" in html
    assert 'href="/staff/bounces"' in html  # the Bounces entry in the staff navigation

    raw_page = client.get(f"/staff/bounces/messages/{hard.id}")
    assert raw_page.status_code == 200
    assert "X-Postfix-Queue-ID: 4Xk2Qw0c1Zz9sT" in raw_page.get_data(as_text=True)


def test_a_purged_message_says_so(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    inbound = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))
    purge_raw(session, settings, now=utcnow().replace(year=utcnow().year + 1))
    session.commit()
    logged_in(Role.ADMIN)

    html = client.get(f"/staff/bounces/messages/{inbound.id}").get_data(as_text=True)

    assert "Could you send me the full survey data" not in html
    assert "The raw message was deleted" in html


def test_press_officers_cannot_read_bounce_messages(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    inbound = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))
    session.commit()
    logged_in(Role.PRESS_OFFICER)

    assert client.get(f"/staff/bounces/messages/{inbound.id}").status_code == 403
    assert client.get("/staff/bounces").status_code == 403
