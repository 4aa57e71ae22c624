"""The public consent flows through the Flask test client: subscribe, confirm, preferences, leave."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.audience import consent, tokens
from distributor.audience.models import (
    Beat,
    ConfirmationRequest,
    DeliveryMode,
    Journalist,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from distributor.audience.services import address_hash, is_suppressed
from distributor.db import Database, after_commit, utcnow
from distributor.mail.relay_check import CachedRelayCheck
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.support.forms import csrf_token
from tests.support.smtp import SMTPSink


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Confirmation mails handed to the broker after commit, recorded instead of sent."""
    sent: list[int] = []

    def record(session: Session, task: Any, *args: Any) -> None:
        assert task.name == "audience.send_confirmation"
        after_commit(session, lambda: sent.append(args[0]))

    monkeypatch.setattr(consent, "enqueue_after_commit", record)
    return sent


@pytest.fixture()
def beats(session: Session) -> list[Beat]:
    made = [
        Beat(name="Climate", slug="climate-t", description="Heat, floods, policy", is_public=True),
        Beat(name="Fisheries", slug="fisheries-t", description="", is_public=True),
        Beat(name="Board minutes", slug="board-t", description="", is_public=False),
    ]
    session.add_all(made)
    session.commit()
    return made


def _subscribe(client: FlaskClient, email: str, beat_ids: list[int], **extra: str) -> Any:
    token = csrf_token(client, "/subscribe")
    data: dict[str, Any] = {
        "email": email,
        "name": "Sam Reporter",
        "beats": beat_ids,
        "csrf_token": token,
    }
    data.update(extra)
    return client.post("/subscribe", data=data)


def _page(response: Any) -> bytes:
    """The body without its per-response CSP nonces, which differ on purpose."""
    return re.sub(rb'nonce="[^"]+"', b'nonce=""', response.get_data())


def _mail_for(db: Database, settings: Settings, request_id: int) -> InMemoryTransport:
    transport = InMemoryTransport()
    assert consent.deliver_confirmation(
        db, request_id, settings=settings, renderer=EmailRenderer(), transport=transport
    )
    # A redelivered task sends nothing twice.
    assert not consent.deliver_confirmation(
        db, request_id, settings=settings, renderer=EmailRenderer(), transport=transport
    )
    assert len(transport.sent) == 1
    return transport


def _confirm_path(transport: InMemoryTransport) -> str:
    message = email.message_from_bytes(transport.sent[-1].message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    match = re.search(r"http://localhost(/subscribe/confirm/\S+)", text.get_content())
    assert match, text.get_content()
    return match.group(1)


def test_subscribe_page_preselects_a_beat_and_hides_internal_beats(
    client: FlaskClient, beats: list[Beat]
) -> None:
    page = client.get("/subscribe?beat=fisheries-t").get_data(as_text=True)
    assert "Climate" in page and "Fisheries" in page
    assert "Board minutes" not in page
    assert re.search(rf'value="{beats[1].id}"[^>]*checked|checked[^>]*value="{beats[1].id}"', page)
    assert consent.CONSENT_TEXT_VERSION in page


def test_no_enumeration_known_and_unknown_addresses_get_the_same_answer(
    client: FlaskClient, session: Session, beats: list[Beat], queued: list[int]
) -> None:
    known = Journalist(email="known@example.org", email_normalized="known@example.org")
    session.add(known)
    session.flush()
    session.add(
        Subscription(
            journalist_id=known.id, beat_id=beats[0].id, status=SubscriptionStatus.CONFIRMED
        )
    )
    session.commit()
    first = _subscribe(client, "known@example.org", [beats[0].id])
    second = _subscribe(client, "unknown@example.org", [beats[0].id])
    session.add(
        Suppression(
            address_hash=address_hash("blocked@example.org"),
            address="blocked@example.org",
            reason=SuppressionReason.DO_NOT_CONTACT,
        )
    )
    session.commit()
    third = _subscribe(client, "blocked@example.org", [beats[0].id])
    assert first.status_code == second.status_code == third.status_code == 200
    assert _page(first) == _page(second) == _page(third)
    assert b"Check your inbox" in first.get_data()
    # The do-not-contact address got no mail; the other two did.
    assert len(queued) == 2


def test_honeypot_filled_gets_the_same_answer_and_does_nothing(
    client: FlaskClient, session: Session, beats: list[Beat], queued: list[int]
) -> None:
    normal = _subscribe(client, "human@example.org", [beats[0].id])
    bot = _subscribe(client, "bot@example.org", [beats[0].id], website="http://spam.example.com")
    assert bot.status_code == normal.status_code == 200
    assert _page(bot) == _page(normal)
    assert session.scalar(select(Journalist).where(Journalist.email == "bot@example.org")) is None
    assert len(queued) == 1


def test_invalid_address_and_no_beat_are_shown_on_the_form(
    client: FlaskClient, beats: list[Beat], queued: list[int]
) -> None:
    bad = _subscribe(client, "not-an-address", [beats[0].id])
    assert bad.status_code == 422
    assert "Invalid email address" in bad.get_data(as_text=True)
    none = _subscribe(client, "someone@example.org", [])
    assert none.status_code == 422
    assert "Choose at least one beat" in none.get_data(as_text=True)
    internal = _subscribe(client, "someone@example.org", [beats[2].id])
    assert internal.status_code == 422
    assert queued == []


def test_an_address_we_cannot_send_to_is_refused_with_a_reason(
    client: FlaskClient, beats: list[Beat], queued: list[int]
) -> None:
    # RFC 6531: a non-ASCII name part needs SMTPUTF8; with no relay to ask (an injected
    # transport and no relay check) it is refused, with the reason.
    refused = _subscribe(client, "jörg@example.org", [beats[0].id])
    assert refused.status_code == 422
    assert "SMTPUTF8" in refused.get_data(as_text=True)
    assert queued == []
    # An internationalised domain is fine: it goes out in its IDNA form.
    accepted = _subscribe(client, "redaktion@bücher.example", [beats[0].id])
    assert accepted.status_code in (200, 302, 303)
    assert len(queued) == 1


@pytest.mark.parametrize("is_offered", [True, False], ids=["smtputf8", "no-smtputf8"])
def test_the_subscribe_form_asks_the_relay_about_smtputf8(
    settings: Settings,
    db: Database,
    session: Session,
    beats: list[Beat],
    queued: list[int],
    is_offered: bool,
) -> None:
    """The form accepts "José@例子.广告" only while the relay (a real SMTP server on
    loopback) offers SMTPUTF8, and otherwise shows why on the form."""
    with SMTPSink(enable_SMTPUTF8=is_offered) as relay:
        app = create_app(
            settings,
            db=db,
            mail_transport=InMemoryTransport(),
            relay_check=CachedRelayCheck(relay.url),
        )
        response = _subscribe(app.test_client(), "José@例子.广告", [beats[0].id])
    page = response.get_data(as_text=True)
    stored = session.scalar(
        select(Journalist).where(Journalist.email_normalized == "josé@xn--fsqu00a.xn--4rr70v")
    )
    if is_offered:
        assert response.status_code == 200 and "SMTPUTF8" not in page
        assert stored is not None and len(queued) == 1
    else:
        assert response.status_code == 422
        assert f"our mail relay 127.0.0.1:{relay.port} does not offer SMTPUTF8" in page
        assert stored is None and queued == []


def test_one_confirmation_mail_per_address_per_24_hours(
    session: Session, settings: Settings, beats: list[Beat], queued: list[int]
) -> None:
    now = utcnow()
    outcomes = [
        consent.request_subscription(
            session, settings, email="Day@Example.org", name="", beat_ids=[beats[0].id], now=now
        ),
        consent.request_subscription(
            session,
            settings,
            email="day@example.org",
            name="",
            beat_ids=[beats[1].id],
            now=now + dt.timedelta(hours=23),
        ),
        consent.request_subscription(
            session,
            settings,
            email="day@example.org",
            name="",
            beat_ids=[beats[1].id],
            now=now + dt.timedelta(hours=24, minutes=1),
        ),
    ]
    session.commit()
    assert outcomes == [
        consent.SubscribeOutcome.MAIL_QUEUED,
        consent.SubscribeOutcome.RECENTLY_MAILED,
        consent.SubscribeOutcome.MAIL_QUEUED,
    ]
    rows = session.scalars(
        select(ConfirmationRequest).where(
            ConfirmationRequest.address_hash == address_hash("day@example.org")
        )
    ).all()
    assert len(rows) == 2 and len(queued) == 2


def test_confirming_records_consent_evidence(
    db: Database,
    client: FlaskClient,
    session: Session,
    settings: Settings,
    beats: list[Beat],
    queued: list[int],
) -> None:
    _subscribe(client, "evidence@example.org", [beats[0].id, beats[1].id])
    journalist = session.scalar(
        select(Journalist).where(Journalist.email == "evidence@example.org")
    )
    assert journalist is not None
    assert {s.status for s in journalist.subscriptions} == {SubscriptionStatus.PENDING}
    transport = _mail_for(db, settings, queued[0])
    path = _confirm_path(transport)

    page = client.get(path)
    assert page.status_code == 200 and b"Confirm my subscription" in page.data
    token = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)
    )
    assert token
    done = client.post(
        path, data={"csrf_token": token.group(1)}, environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert done.status_code == 200 and b"You are subscribed" in done.data

    session.expire_all()
    subs = session.scalars(
        select(Subscription).where(Subscription.journalist_id == journalist.id)
    ).all()
    assert len(subs) == 2
    for sub in subs:
        assert sub.status == SubscriptionStatus.CONFIRMED
        assert sub.consent_at is not None and sub.confirmed_at is not None
        assert sub.consent_method == "double_opt_in"
        assert sub.consent_text_version == consent.CONSENT_TEXT_VERSION
        assert sub.consent_ip_hash == consent.ip_hash(settings, "203.0.113.9")
        assert "203.0.113.9" not in (sub.consent_ip_hash or "")


def _state(session: Session) -> tuple[Any, ...]:
    session.expire_all()
    return (
        sorted(
            (s.journalist_id, s.beat_id, s.status.value)
            for s in session.scalars(select(Subscription))
        ),
        sorted(s.address_hash for s in session.scalars(select(Suppression))),
        session.scalar(select(func.count()).select_from(Journalist)),
        sorted(
            (j.id, j.is_paused, j.delivery_mode.value) for j in session.scalars(select(Journalist))
        ),
    )


def test_get_never_changes_state_on_any_token_link(
    app: Flask, client: FlaskClient, session: Session, settings: Settings, beats: list[Beat]
) -> None:
    journalist = Journalist(email="scanner@example.org", email_normalized="scanner@example.org")
    session.add(journalist)
    session.flush()
    session.add(
        Subscription(
            journalist_id=journalist.id, beat_id=beats[0].id, status=SubscriptionStatus.PENDING
        )
    )
    session.commit()
    links = {
        "audience_public.confirm": tokens.confirm_token(
            settings, journalist.id, [beats[0].id, beats[1].id]
        ),
        "audience_public.preferences": tokens.preferences_token(settings, journalist.id),
        "audience_public.download_data": tokens.preferences_token(settings, journalist.id),
        "audience_public.unsubscribe_page": tokens.unsubscribe_token(settings, journalist.id),
    }
    # Every public route that takes a token must be in the list above.
    token_endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("audience_public.")
        and "token" in rule.arguments
        and "GET" in (rule.methods or set())
    }
    assert token_endpoints == set(links)
    before = _state(session)
    with app.test_request_context():
        from flask import url_for

        urls = [url_for(endpoint, token=token) for endpoint, token in links.items()]
    for url in urls:
        for method in ("GET", "HEAD"):
            response = client.open(url, method=method)
            assert response.status_code == 200, (url, response.status_code)
            assert _state(session) == before, url


def test_one_click_unsubscribe_rfc8058(
    app: Flask, session: Session, settings: Settings, beats: list[Beat]
) -> None:
    journalist = Journalist(email="oneclick@example.org", email_normalized="oneclick@example.org")
    session.add(journalist)
    session.flush()
    for beat in beats[:2]:
        session.add(
            Subscription(
                journalist_id=journalist.id, beat_id=beat.id, status=SubscriptionStatus.CONFIRMED
            )
        )
    session.commit()
    # A mail client: no cookie, no CSRF token, just the RFC 8058 body.
    mail_client = app.test_client()
    response = mail_client.post(
        f"/unsubscribe/{tokens.unsubscribe_token(settings, journalist.id)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    session.expire_all()
    assert {s.status for s in journalist.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
    assert is_suppressed(session, "oneclick@example.org")
    entry = session.scalar(
        select(Suppression).where(Suppression.address_hash == address_hash("oneclick@example.org"))
    )
    assert entry is not None and entry.reason == SuppressionReason.UNSUBSCRIBED_ALL
    # Posting again (mail clients retry) is harmless.
    again = mail_client.post(
        f"/unsubscribe/{tokens.unsubscribe_token(settings, journalist.id)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert again.status_code == 200


@pytest.mark.usefixtures("beats")
def test_unsubscribe_rejects_other_purposes_tokens(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    journalist = Journalist(email="purpose@example.org", email_normalized="purpose@example.org")
    session.add(journalist)
    session.commit()
    wrong = tokens.preferences_token(settings, journalist.id)
    response = client.post(f"/unsubscribe/{wrong}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert not is_suppressed(session, "purpose@example.org")
    assert (
        client.get(f"/preferences/{tokens.unsubscribe_token(settings, journalist.id)}").status_code
        == 400
    )


def test_preference_centre_changes_beats_mode_and_pause(
    client: FlaskClient, session: Session, settings: Settings, beats: list[Beat]
) -> None:
    journalist = Journalist(email="prefs@example.org", email_normalized="prefs@example.org")
    session.add(journalist)
    session.flush()
    session.add(
        Subscription(
            journalist_id=journalist.id, beat_id=beats[0].id, status=SubscriptionStatus.CONFIRMED
        )
    )
    session.commit()
    path = f"/preferences/{tokens.preferences_token(settings, journalist.id)}"
    token = csrf_token(client, path)
    response = client.post(
        path,
        data={
            "beats": [beats[1].id],
            "delivery_mode": "daily_digest",
            "is_paused": "y",
            "csrf_token": token,
        },
    )
    assert response.status_code == 200 and b"Your choices are saved" in response.data
    session.expire_all()
    status = {s.beat_id: s.status for s in journalist.subscriptions}
    assert status == {
        beats[0].id: SubscriptionStatus.UNSUBSCRIBED,
        beats[1].id: SubscriptionStatus.CONFIRMED,
    }
    new = next(s for s in journalist.subscriptions if s.beat_id == beats[1].id)
    assert new.consent_method == "preference_centre" and new.consent_at is not None
    assert journalist.delivery_mode == DeliveryMode.DAILY_DIGEST and journalist.is_paused


def test_download_and_erase_own_data(
    client: FlaskClient, session: Session, settings: Settings, beats: list[Beat]
) -> None:
    journalist = Journalist(
        email="forget@example.org", email_normalized="forget@example.org", name="Fo Rget"
    )
    session.add(journalist)
    session.flush()
    session.add(
        Subscription(
            journalist_id=journalist.id,
            beat_id=beats[0].id,
            status=SubscriptionStatus.CONFIRMED,
            consent_method="double_opt_in",
        )
    )
    session.commit()
    path = f"/preferences/{tokens.preferences_token(settings, journalist.id)}"
    data = client.get(f"{path}/data.json")
    assert data.status_code == 200
    payload = json.loads(data.data)
    assert payload["email"] == "forget@example.org"
    assert payload["subscriptions"][0]["consent_method"] == "double_opt_in"

    token = csrf_token(client, path)
    refused = client.post(f"{path}/erase", data={"csrf_token": token})
    assert refused.status_code == 200 and b"Tick the box" in refused.data
    erased = client.post(f"{path}/erase", data={"csrf_token": token, "confirm": "y"})
    assert erased.status_code == 200 and b"Your data is erased" in erased.data
    session.expire_all()
    assert (
        session.scalar(
            select(Journalist).where(Journalist.email_normalized == "forget@example.org")
        )
        is None
    )
    entry = session.scalar(
        select(Suppression).where(Suppression.address_hash == address_hash("forget@example.org"))
    )
    assert entry is not None and entry.reason == SuppressionReason.ERASED and entry.address is None
    assert client.get(path).status_code == 400


def test_embed_form_can_be_framed_and_posts_without_csrf(
    client: FlaskClient, beats: list[Beat], queued: list[int]
) -> None:
    page = client.get("/subscribe/embed")
    assert page.status_code == 200
    assert "frame-ancestors" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    full_page = client.get("/subscribe")
    assert "frame-ancestors 'self'" in full_page.headers["Content-Security-Policy"]
    assert full_page.headers["X-Frame-Options"] == "SAMEORIGIN"
    posted = client.post(
        "/subscribe/embed", data={"email": "framed@example.org", "beats": [beats[0].id]}
    )
    assert posted.status_code == 200 and b"Check your inbox" in posted.data
    assert len(queued) == 1


@pytest.mark.usefixtures("queued")
def test_subscribe_posts_are_rate_limited_per_ip(
    settings: Settings, db: Any, beats: list[Beat]
) -> None:
    import dataclasses

    from distributor.app import create_app

    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, subscribe_rate_limit="2 per minute"
    )
    client = create_app(limited, db=db, mail_transport=InMemoryTransport()).test_client()
    statuses = [
        _subscribe(client, f"limit{n}@example.org", [beats[0].id]).status_code for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_sweep_requeues_confirmations_never_mailed(
    db: Database, session: Session, settings: Settings, beats: list[Beat], queued: list[int]
) -> None:
    now = utcnow()
    consent.request_subscription(
        session, settings, email="lost@example.org", name="", beat_ids=[beats[0].id], now=now
    )
    session.commit()
    assert consent.unsent_confirmations(session, now=now) == []
    later = now + dt.timedelta(minutes=3)
    assert consent.unsent_confirmations(session, now=later) == queued
    _mail_for(db, settings, queued[0])
    session.expire_all()
    assert consent.unsent_confirmations(session, now=later) == []
