"""ESP webhooks: a valid request is recorded; a tampered, replayed or unsigned one is refused."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.audience.models import SuppressionReason
from distributor.audience.services import find_suppression, is_suppressed
from distributor.bounces.models import Bounce, BounceKind, Complaint, InboundMessage
from distributor.bounces.views import CERT_FETCHER
from distributor.bounces.webhooks import HttpsCertificateFetcher, is_sns_url, sns_string_to_sign
from distributor.db import Database, utcnow
from distributor.errors import Forbidden
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.support.bounces import delivery

TOPIC = "arn:aws:sns:eu-west-1:123456789012:harbourlight-ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000.pem"
POSTMARK_TOKEN = "pm-" + "s3cret-webhook-password"
MAILGUN_KEY = "key-" + "mailgun-signing-0123456789"

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _self_signed_pem(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class FakeFetcher:
    """Stands in for the HTTPS fetch of SNS certificates (and subscribe URLs): no network."""

    def __init__(self) -> None:
        self.documents = {CERT_URL: _self_signed_pem(_RSA_KEY)}
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.documents.get(url, b"<ConfirmSubscriptionResponse/>")


@pytest.fixture()
def fetcher() -> FakeFetcher:
    return FakeFetcher()


@pytest.fixture()
def webhook_app(
    settings: Settings, db: Database, mail_transport: InMemoryTransport, fetcher: FakeFetcher
) -> Flask:
    public_key = _EC_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    configured = dataclasses.replace(
        settings,
        ses_sns_topic_arns=TOPIC,
        postmark_webhook_token=POSTMARK_TOKEN,
        sendgrid_webhook_public_key=base64.b64encode(public_key).decode(),
        mailgun_webhook_signing_key=MAILGUN_KEY,
    )
    app = create_app(configured, db=db, mail_transport=mail_transport)
    app.extensions[CERT_FETCHER] = fetcher
    return app


@pytest.fixture()
def hook(webhook_app: Flask) -> FlaskClient:
    return webhook_app.test_client()


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


# -- Amazon SES via SNS -----------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sns_message(
    inner: dict[str, Any],
    *,
    timestamp: dt.datetime | None = None,
    version: str = "1",
    key: rsa.RSAPrivateKey = _RSA_KEY,
    **overrides: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": secrets.token_hex(16),
        "TopicArn": TOPIC,
        "Message": json.dumps(inner),
        "Timestamp": _iso(timestamp or utcnow()),
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }
    message.update(overrides)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def ses_bounce(token: str, address: str) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": _iso(utcnow()),
            "feedbackId": "0102018c-ses-feedback",
            "reportingMTA": "dsn; a8-12.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": _iso(utcnow()),
            "source": f"bounces+{token}@bounces.harbourlight.example",
            "messageId": "0102018c-ses-message",
            "destination": [address],
            "headers": [{"name": "Message-ID", "value": "<rel9.ses@harbourlight.example>"}],
            "commonHeaders": {"messageId": "<rel9.ses@harbourlight.example>"},
        },
    }


def _post_sns(client: FlaskClient, message: dict[str, Any]) -> Any:
    return client.post(
        "/webhooks/ses",
        data=json.dumps(message),
        headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "x"},
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_with_a_valid_sns_signature_is_recorded(
    hook: FlaskClient, session: Session, fetcher: FakeFetcher, version: str
) -> None:
    d = delivery(session, email="priya.raman@gmail.com", token="sesToken0001")
    session.commit()

    response = _post_sns(
        hook, sns_message(ses_bounce("sesToken0001", d.email or ""), version=version)
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    bounce = session.scalars(select(Bounce)).one()
    assert (bounce.delivery_id, bounce.matched_by, bounce.kind) == (d.id, "verp", BounceKind.HARD)
    assert is_suppressed(session, "priya.raman@gmail.com")
    assert fetcher.fetched == [CERT_URL]


def test_ses_complaint_suppresses(hook: FlaskClient, session: Session) -> None:
    d = delivery(session, email="lena.voss@yahoo.com", token="sesToken0002")
    session.commit()
    inner = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "lena.voss@yahoo.com"}],
            "complaintFeedbackType": "abuse",
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
        },
        "mail": {"source": f"bounces+{d.verp_token}@bounces.harbourlight.example"},
    }

    assert _post_sns(hook, sns_message(inner)).status_code == 200

    complaint = session.scalars(select(Complaint)).one()
    assert complaint.delivery_id == d.id
    suppression = find_suppression(session, "lena.voss@yahoo.com")
    assert suppression is not None and suppression.reason is SuppressionReason.COMPLAINT


def test_ses_tampered_message_is_refused(hook: FlaskClient, session: Session) -> None:
    message = sns_message(ses_bounce("sesToken0001", "priya.raman@gmail.com"))
    message["Message"] = message["Message"].replace("priya.raman", "someone.else")

    assert _post_sns(hook, message).status_code == 403
    assert _count(session, InboundMessage) == 0
    assert not is_suppressed(session, "someone.else@gmail.com")


def test_ses_message_signed_by_another_key_is_refused(hook: FlaskClient, session: Session) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = sns_message(ses_bounce("sesToken0001", "priya.raman@gmail.com"), key=other)

    assert _post_sns(hook, message).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_ses_replayed_old_message_is_refused(hook: FlaskClient, session: Session) -> None:
    message = sns_message(
        ses_bounce("sesToken0001", "priya.raman@gmail.com"),
        timestamp=utcnow() - dt.timedelta(hours=2),
    )

    assert _post_sns(hook, message).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_ses_same_notification_twice_is_recorded_once(hook: FlaskClient, session: Session) -> None:
    delivery(session, email="priya.raman@gmail.com", token="sesToken0001")
    session.commit()
    message = sns_message(ses_bounce("sesToken0001", "priya.raman@gmail.com"))

    assert _post_sns(hook, message).status_code == 200
    assert _post_sns(hook, message).status_code == 200

    assert _count(session, InboundMessage) == 1
    assert _count(session, Bounce) == 1


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example/SimpleNotificationService.pem",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    ],
)
def test_ses_certificate_is_only_fetched_from_sns(
    hook: FlaskClient, fetcher: FakeFetcher, cert_url: str
) -> None:
    message = sns_message(ses_bounce("sesToken0001", "a@example.org"), SigningCertURL=cert_url)

    assert _post_sns(hook, message).status_code == 403
    assert fetcher.fetched == []


def test_ses_messages_from_someone_elses_topic_are_refused(
    hook: FlaskClient, session: Session
) -> None:
    message = sns_message(
        ses_bounce("sesToken0001", "priya.raman@gmail.com"),
        TopicArn="arn:aws:sns:eu-west-1:999999999999:attacker-topic",
    )

    assert _post_sns(hook, message).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_ses_subscription_is_confirmed_through_sns_only(
    hook: FlaskClient, fetcher: FakeFetcher
) -> None:
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    message = sns_message(
        {}, Type="SubscriptionConfirmation", SubscribeURL=subscribe, Token="abc", Message="confirm"
    )
    assert _post_sns(hook, message).status_code == 200
    assert fetcher.fetched == [CERT_URL, subscribe]


def test_the_real_certificate_fetcher_refuses_other_urls_before_any_request() -> None:
    fetch = HttpsCertificateFetcher()
    with pytest.raises(Forbidden):
        fetch("https://evil.example/cert.pem")
    assert is_sns_url(CERT_URL)
    assert is_sns_url("https://sns.us-gov-west-1.amazonaws.com/x.pem")
    assert not is_sns_url("https://sns.eu-west-1.amazonaws.com@evil.example/x.pem")


def test_ses_is_off_until_a_topic_is_configured(client: FlaskClient) -> None:
    message = sns_message(ses_bounce("sesToken0001", "a@example.org"))
    assert _post_sns(client, message).status_code == 404


# -- Postmark ---------------------------------------------------------------------------------


def postmark_bounce(address: str, token: str) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"verp_token": token},
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address,
        "From": "news@harbourlight.example",
        "BouncedAt": _iso(utcnow()),
        "Inactive": True,
    }


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_with_the_right_credentials_is_recorded(
    hook: FlaskClient, session: Session
) -> None:
    d = delivery(session, email="h.delacroix@saltmarsh-herald.example", token="pmToken00001")
    session.commit()

    response = hook.post(
        "/webhooks/postmark",
        json=postmark_bounce("h.delacroix@saltmarsh-herald.example", "pmToken00001"),
        headers=_basic("postmark", POSTMARK_TOKEN),
    )

    assert response.status_code == 200
    bounce = session.scalars(select(Bounce)).one()
    assert (bounce.delivery_id, bounce.status_code) == (d.id, "5.1.1")
    assert is_suppressed(session, "h.delacroix@saltmarsh-herald.example")


@pytest.mark.parametrize(
    "headers",
    [{}, _basic("postmark", "wrong-password"), {"Authorization": "Bearer " + POSTMARK_TOKEN}],
)
def test_postmark_without_the_right_credentials_is_refused(
    hook: FlaskClient, session: Session, headers: dict[str, str]
) -> None:
    response = hook.post(
        "/webhooks/postmark", json=postmark_bounce("x@example.org", "pmToken00001"), headers=headers
    )
    assert response.status_code == 403
    assert _count(session, InboundMessage) == 0


def test_postmark_replay_changes_nothing(hook: FlaskClient, session: Session) -> None:
    delivery(session, email="h.delacroix@saltmarsh-herald.example", token="pmToken00001")
    session.commit()
    body = postmark_bounce("h.delacroix@saltmarsh-herald.example", "pmToken00001")
    for _ in range(2):
        hook.post("/webhooks/postmark", json=body, headers=_basic("pm", POSTMARK_TOKEN))
    assert _count(session, Bounce) == 1


# -- SendGrid ---------------------------------------------------------------------------------


def _sendgrid_post(
    client: FlaskClient,
    events: list[dict[str, Any]],
    *,
    key: ec.EllipticCurvePrivateKey = _EC_KEY,
    timestamp: int | None = None,
    tamper: Callable[[bytes], bytes] | None = None,
) -> Any:
    body = json.dumps(events).encode()
    stamp = str(timestamp if timestamp is not None else int(utcnow().timestamp()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    if tamper is not None:
        body = tamper(body)
    return client.post(
        "/webhooks/sendgrid",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )


def sendgrid_events(token: str) -> list[dict[str, Any]]:
    now = int(utcnow().timestamp())
    return [
        {
            "email": "r.castellanos@shorelinegazette.example",
            "timestamp": now,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.10",
            "reason": "550 5.1.10 RESOLVER.ADR.RecipientNotFound",
            "sg_event_id": "sg-event-bounce-1",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "verp_token": token,
        },
        {
            "email": "kofi.mensah@gmail.com",
            "timestamp": now,
            "event": "bounce",
            "type": "blocked",
            "reason": "550 5.7.26 Unauthenticated email is not accepted due to DMARC policy",
            "sg_event_id": "sg-event-blocked-1",
        },
        {"email": "x@example.org", "timestamp": now, "event": "delivered", "sg_event_id": "sg-3"},
    ]


def test_sendgrid_signed_batch_is_recorded_event_by_event(
    hook: FlaskClient, session: Session
) -> None:
    d = delivery(session, email="r.castellanos@shorelinegazette.example", token="sgToken00001")
    session.commit()

    response = _sendgrid_post(hook, sendgrid_events("sgToken00001"))

    assert response.status_code == 200
    assert [e["classification"] for e in response.get_json()["events"]] == [
        "bounce",
        "bounce",
        "other",
    ]
    hard = session.scalars(select(Bounce).where(Bounce.kind == BounceKind.HARD)).one()
    assert hard.delivery_id == d.id
    assert is_suppressed(session, "r.castellanos@shorelinegazette.example")
    assert not is_suppressed(session, "kofi.mensah@gmail.com")  # blocked: policy, flagged only


def test_sendgrid_tampered_body_is_refused(hook: FlaskClient, session: Session) -> None:
    response = _sendgrid_post(
        hook,
        sendgrid_events("sgToken00001"),
        tamper=lambda body: body.replace(b"shorelinegazette", b"shorelinegazettf"),
    )
    assert response.status_code == 403
    assert _count(session, InboundMessage) == 0


def test_sendgrid_signature_by_another_key_is_refused(hook: FlaskClient, session: Session) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert _sendgrid_post(hook, sendgrid_events("t"), key=other).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_sendgrid_replayed_old_request_is_refused(hook: FlaskClient, session: Session) -> None:
    old = int((utcnow() - dt.timedelta(hours=1)).timestamp())
    assert _sendgrid_post(hook, sendgrid_events("t"), timestamp=old).status_code == 403
    assert _count(session, InboundMessage) == 0


# -- Mailgun ----------------------------------------------------------------------------------


def mailgun_body(
    *, timestamp: int | None = None, token: str | None = None, key: str = MAILGUN_KEY
) -> dict[str, Any]:
    stamp = str(timestamp if timestamp is not None else int(utcnow().timestamp()))
    nonce = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + nonce).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": stamp, "token": nonce, "signature": signature},
        "event-data": {
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "event": "failed",
            "severity": "permanent",
            "recipient": "j.achterberg@estuary-post.example",
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "mx-host": "mx.estuary-post.example",
            },
            "message": {"headers": {"message-id": "rel9.mailgun@harbourlight.example"}},
        },
    }


def test_mailgun_with_a_valid_signature_is_recorded(hook: FlaskClient, session: Session) -> None:
    d = delivery(
        session,
        email="j.achterberg@estuary-post.example",
        token="mgToken00001",
        message_id="<rel9.mailgun@harbourlight.example>",
    )
    session.commit()

    assert hook.post("/webhooks/mailgun", json=mailgun_body()).status_code == 200

    bounce = session.scalars(select(Bounce)).one()
    assert (bounce.delivery_id, bounce.matched_by, bounce.status_code) == (
        d.id,
        "message-id",
        "5.1.1",
    )
    assert bounce.remote_mta == "mx.estuary-post.example"
    assert is_suppressed(session, "j.achterberg@estuary-post.example")


def test_mailgun_tampered_signature_is_refused(hook: FlaskClient, session: Session) -> None:
    body = mailgun_body(key="not-our-signing-key")
    assert hook.post("/webhooks/mailgun", json=body).status_code == 403
    body = mailgun_body()
    body["event-data"]["recipient"] = "someone.else@example.org"  # the signature still verifies:
    body["signature"]["timestamp"] = str(int(body["signature"]["timestamp"]) - 1)  # not this
    assert hook.post("/webhooks/mailgun", json=body).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_mailgun_replayed_old_request_is_refused(hook: FlaskClient, session: Session) -> None:
    old = int((utcnow() - dt.timedelta(hours=1)).timestamp())
    assert hook.post("/webhooks/mailgun", json=mailgun_body(timestamp=old)).status_code == 403
    assert _count(session, InboundMessage) == 0


def test_mailgun_replayed_token_changes_nothing(hook: FlaskClient, session: Session) -> None:
    delivery(session, email="j.achterberg@estuary-post.example", token="mgToken00001")
    session.commit()
    body = mailgun_body(token="a" * 50)

    assert hook.post("/webhooks/mailgun", json=body).status_code == 200
    assert hook.post("/webhooks/mailgun", json=body).status_code == 200

    assert _count(session, InboundMessage) == 1
    assert _count(session, Bounce) == 1


def test_webhooks_need_no_csrf_token_or_login(hook: FlaskClient) -> None:
    # A post without a CSRF token or a login reaches each endpoint's own signature check, which
    # refuses it with 403 and its own reason (a CSRF refusal would be a 400, a login a redirect).
    refusals = {
        "/webhooks/ses": "SNS topic is not one of ours",
        "/webhooks/postmark": "Postmark webhook needs basic auth",
        "/webhooks/sendgrid": "unreadable SendGrid signature",
        "/webhooks/mailgun": "Mailgun webhook without a signature",
    }
    for path, reason in refusals.items():
        response = hook.post(path, data=b"{}", headers={"Content-Type": "application/json"})
        assert response.status_code == 403, path
        assert reason in response.get_data(as_text=True), path


def test_the_sns_string_to_sign_follows_the_documented_layout() -> None:
    # AWS: name and value on their own lines, in this order, optional Subject only when present,
    # each line ending in a newline; subscription messages sign SubscribeURL and Token instead.
    notification = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "My First Message",
        "Message": "Hello world!",
        "Timestamp": "2026-11-24T09:14:03.000Z",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }
    assert sns_string_to_sign(notification) == (
        b"Message\nHello world!\n"
        b"MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        b"Subject\nMy First Message\n"
        b"Timestamp\n2026-11-24T09:14:03.000Z\n"
        b"TopicArn\n" + TOPIC.encode() + b"\n"
        b"Type\nNotification\n"
    )
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9",
        "Token": "2336412f37",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": "2026-11-24T09:14:03.000Z",
    }
    assert sns_string_to_sign(confirmation) == (
        b"Message\nYou have chosen to subscribe\n"
        b"MessageId\n165545c9\n"
        b"SubscribeURL\nhttps://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription\n"
        b"Timestamp\n2026-11-24T09:14:03.000Z\n"
        b"Token\n2336412f37\n"
        b"TopicArn\n" + TOPIC.encode() + b"\n"
        b"Type\nSubscriptionConfirmation\n"
    )
