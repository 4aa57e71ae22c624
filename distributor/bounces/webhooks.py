"""Authenticated ESP webhooks: each request proves who sent it before anything is stored.

- Amazon SES via SNS: the SNS message signature (RSA, SignatureVersion 1 = SHA1, 2 = SHA256)
  checked with the certificate at ``SigningCertURL``, which we only fetch from
  ``https://sns.<region>.amazonaws.com/``; and the topic must be one of ours
  (``SES_SNS_TOPIC_ARNS``), since anyone can publish a validly signed message on their own topic.
- Postmark: HTTP basic auth whose password is ``POSTMARK_WEBHOOK_TOKEN``.
- SendGrid: the signed event webhook, ECDSA P-256/SHA-256 over timestamp + body, checked
  with ``SENDGRID_WEBHOOK_PUBLIC_KEY``.
- Mailgun: HMAC-SHA256 of timestamp + token with ``MAILGUN_WEBHOOK_SIGNING_KEY``.

Signed timestamps older than ``BOUNCE_WEBHOOK_MAX_AGE_SECONDS`` are refused (replays); a
replay inside that window is stored under the same dedupe key and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy.orm import Session

from distributor.bounces import esp
from distributor.bounces.models import Classification, InboundMessage
from distributor.bounces.parsing import ParsedReport
from distributor.bounces.services import process_inbound, store_inbound
from distributor.errors import DomainError, Forbidden, NotFound, ValidationFailed
from distributor.settings import Settings

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com$")


class Unavailable(DomainError):
    """We could not check the request right now; the sender should retry."""

    status_code = 503


class CertificateFetcher(Protocol):
    def __call__(self, url: str) -> bytes: ...


def is_sns_url(url: str) -> bool:
    """Only SNS's own HTTPS endpoints: ``https://sns.<region>.amazonaws.com/...``."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.username is None
        and parts.port is None
        and bool(_SNS_HOST.match(parts.hostname or ""))
    )


class HttpsCertificateFetcher:
    """Fetches (and caches) SNS signing certificates; refuses any other URL."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        if not is_sns_url(url):
            raise Forbidden("certificate URL is not an SNS endpoint")
        with self._lock:
            if url in self._cache:
                return self._cache[url]
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - checked
                body: bytes = response.read(65536)
        except OSError as exc:
            raise Unavailable("could not fetch the SNS certificate; SNS will retry") from exc
        with self._lock:
            self._cache[url] = body
        return body


def _age_ok(signed_at: dt.datetime, now: dt.datetime, max_age: int) -> bool:
    return -60 <= (now - signed_at).total_seconds() <= max_age


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationFailed("body is not JSON") from exc


def _ingest(
    session: Session,
    settings: Settings,
    *,
    source: str,
    raw: bytes,
    dedupe_key: str,
    report: ParsedReport,
    subject: str,
) -> InboundMessage:
    inbound, _created = store_inbound(
        session, source=source, raw=raw, dedupe_key=dedupe_key[:300], subject=subject
    )
    return process_inbound(session, settings, inbound, report)


# -- Amazon SES via SNS -----------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical string SNS signs (AWS SNS "Verifying the signatures of Amazon SNS messages")."""
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise ValidationFailed("unknown SNS message type")
    out = []
    for name in fields:
        if name in message and message[name] is not None:
            out.append(f"{name}\n{message[name]}\n")
    return "".join(out).encode("utf-8")


def verify_sns(
    message: Mapping[str, Any],
    fetch: CertificateFetcher,
    *,
    now: dt.datetime,
    max_age: int,
) -> None:
    """Raise ``Forbidden`` unless SNS signed exactly this message recently."""
    cert_url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not is_sns_url(cert_url) or not cert_url.endswith(".pem"):
        raise Forbidden("signing certificate URL is not an SNS endpoint")
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is defined as SHA1withRSA
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise Forbidden("unsupported SNS signature version")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        certificate = x509.load_pem_x509_certificate(fetch(cert_url))
    except (binascii.Error, ValueError) as exc:
        raise Forbidden("SNS signature or certificate unreadable") from exc
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise Forbidden("SNS certificate is not RSA")
    try:
        public_key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise Forbidden("SNS signature does not match") from exc
    try:
        signed_at = dt.datetime.fromisoformat(
            str(message.get("Timestamp", "")).replace("Z", "+00:00")
        )
    except ValueError as exc:
        raise Forbidden("SNS timestamp unreadable") from exc
    if signed_at.tzinfo is None or not _age_ok(signed_at, now, max_age):
        raise Forbidden("SNS message is too old (replay?)")


def handle_ses(
    session: Session,
    settings: Settings,
    body: bytes,
    fetch: CertificateFetcher,
    *,
    now: dt.datetime,
) -> InboundMessage:
    """Verify an SNS POST, confirm our topic's subscription, or record an SES event."""
    topics = {t.strip() for t in settings.ses_sns_topic_arns.split(",") if t.strip()}
    if not topics:
        raise NotFound("SES webhooks are not configured")
    message = _json(body)
    if not isinstance(message, dict):
        raise ValidationFailed("not an SNS message")
    # The topic first: a message for someone else's topic must not make us fetch anything
    # (each fetch is a request an unauthenticated caller can make us send). The signature
    # check after it still proves the topic named is the one SNS signed.
    if message.get("TopicArn") not in topics:
        raise Forbidden("SNS topic is not one of ours")
    verify_sns(message, fetch, now=now, max_age=settings.bounce_webhook_max_age_seconds)
    dedupe_key = f"ses:{message.get('MessageId')}"
    if message.get("Type") == "SubscriptionConfirmation":
        subscribe_url = str(message.get("SubscribeURL", ""))
        if not is_sns_url(subscribe_url):
            raise Forbidden("subscribe URL is not an SNS endpoint")
        fetch(subscribe_url)
        report = ParsedReport(Classification.OTHER, "ses", summary="SNS subscription confirmed")
        return _ingest(
            session, settings, source="webhook-ses", raw=body, dedupe_key=dedupe_key,
            report=report, subject="SNS subscription confirmation",
        )  # fmt: skip
    if message.get("Type") != "Notification":
        report = ParsedReport(Classification.OTHER, "ses", summary=f"SNS {message.get('Type')}")
        return _ingest(
            session, settings, source="webhook-ses", raw=body, dedupe_key=dedupe_key,
            report=report, subject=str(message.get("Type")),
        )  # fmt: skip
    inner = _json(str(message.get("Message", "")).encode("utf-8"))
    if not isinstance(inner, dict):
        raise ValidationFailed("SES notification is not a JSON object")
    report = esp.ses_report(inner, body.decode("utf-8", "replace"), settings.bounce_domain)
    return _ingest(
        session, settings, source="webhook-ses", raw=body, dedupe_key=dedupe_key,
        report=report, subject=report.summary,
    )  # fmt: skip


# -- Postmark ---------------------------------------------------------------------------------


def verify_postmark(settings: Settings, authorization: str) -> None:
    if not settings.postmark_webhook_token:
        raise NotFound("Postmark webhooks are not configured")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise Forbidden("Postmark webhook needs basic auth")
    try:
        _user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Forbidden("unreadable basic auth") from exc
    if not hmac.compare_digest(password.encode(), settings.postmark_webhook_token.encode()):
        raise Forbidden("wrong Postmark webhook credentials")


def handle_postmark(
    session: Session, settings: Settings, body: bytes, authorization: str
) -> InboundMessage:
    """Record a Postmark bounce or spam-complaint webhook after checking its credentials."""
    verify_postmark(settings, authorization)
    event = _json(body)
    if not isinstance(event, dict):
        raise ValidationFailed("not a Postmark event")
    report = esp.postmark_report(event, body.decode("utf-8", "replace"), settings.bounce_domain)
    key = (
        f"postmark:{event.get('RecordType')}:{event.get('ID') or hashlib.sha256(body).hexdigest()}"
    )
    return _ingest(
        session, settings, source="webhook-postmark", raw=body, dedupe_key=key,
        report=report, subject=report.summary,
    )  # fmt: skip


# -- SendGrid ---------------------------------------------------------------------------------


def verify_sendgrid(
    settings: Settings, body: bytes, signature: str, timestamp: str, *, now: dt.datetime
) -> None:
    if not settings.sendgrid_webhook_public_key:
        raise NotFound("SendGrid webhooks are not configured")
    try:
        key = serialization.load_der_public_key(
            base64.b64decode(settings.sendgrid_webhook_public_key)
        )
        raw_signature = base64.b64decode(signature, validate=True)
        signed_at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    except (binascii.Error, ValueError, OverflowError) as exc:
        raise Forbidden("unreadable SendGrid signature") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Forbidden("SendGrid key is not an ECDSA key")
    try:
        key.verify(raw_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Forbidden("SendGrid signature does not match") from exc
    if not _age_ok(signed_at, now, settings.bounce_webhook_max_age_seconds):
        raise Forbidden("SendGrid request is too old (replay?)")


def handle_sendgrid(
    session: Session,
    settings: Settings,
    body: bytes,
    signature: str,
    timestamp: str,
    *,
    now: dt.datetime,
) -> list[InboundMessage]:
    """Record each event of a signed SendGrid batch (one row per event, deduped by its id)."""
    verify_sendgrid(settings, body, signature, timestamp, now=now)
    events = _json(body)
    if not isinstance(events, list):
        raise ValidationFailed("SendGrid posts a JSON array of events")
    rows = []
    for event in events:
        if not isinstance(event, dict):
            continue
        raw = json.dumps(event, sort_keys=True).encode("utf-8")
        report = esp.sendgrid_report(event, raw.decode("utf-8"), settings.bounce_domain)
        key = f"sendgrid:{event.get('sg_event_id') or hashlib.sha256(raw).hexdigest()}"
        rows.append(
            _ingest(
                session,
                settings,
                source="webhook-sendgrid",
                raw=raw,
                dedupe_key=key,
                report=report,
                subject=report.summary,
            )
        )
    return rows


# -- Mailgun ----------------------------------------------------------------------------------


def verify_mailgun(settings: Settings, signature: Mapping[str, Any], *, now: dt.datetime) -> str:
    """Check the HMAC and the timestamp; return the token (unique per request)."""
    if not settings.mailgun_webhook_signing_key:
        raise NotFound("Mailgun webhooks are not configured")
    timestamp = str(signature.get("timestamp", ""))
    token = str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    expected = hmac.new(
        settings.mailgun_webhook_signing_key.encode(),
        (timestamp + token).encode(),
        hashlib.sha256,
    ).hexdigest()
    if not token or not hmac.compare_digest(expected, given):
        raise Forbidden("Mailgun signature does not match")
    try:
        signed_at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise Forbidden("unreadable Mailgun timestamp") from exc
    if not _age_ok(signed_at, now, settings.bounce_webhook_max_age_seconds):
        raise Forbidden("Mailgun request is too old (replay?)")
    return token


def handle_mailgun(
    session: Session, settings: Settings, body: bytes, *, now: dt.datetime
) -> InboundMessage:
    """Record a Mailgun failed/complained event after checking its signature."""
    payload = _json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("signature"), dict):
        raise Forbidden("Mailgun webhook without a signature")
    token = verify_mailgun(settings, payload["signature"], now=now)
    event = payload.get("event-data")
    if not isinstance(event, dict):
        raise ValidationFailed("Mailgun webhook without event-data")
    report = esp.mailgun_report(event, body.decode("utf-8", "replace"), settings.bounce_domain)
    # The token is unique per request: a replay, even inside the window, finds this row.
    return _ingest(
        session, settings, source="webhook-mailgun", raw=body, dedupe_key=f"mailgun:{token}",
        report=report, subject=report.summary,
    )  # fmt: skip
