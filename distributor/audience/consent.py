"""Consent flows journalists drive themselves: subscribe, confirm, preferences, leave, erase.

The rules come from GDPR Art. 7 (demonstrable consent, withdrawal as easy as giving it) and
from the subscription-bombing defences in STANDARDS.md: double opt-in, one confirmation mail
per address per 24 hours, the same answer whether or not an address is known.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.audience import tokens
from distributor.audience.models import (
    Beat,
    ConfirmationRequest,
    Journalist,
    LawfulBasis,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from distributor.audience.services import (
    address_hash,
    find_journalist,
    find_suppression,
    normalise_address,
    record_lift,
)
from distributor.db import Database, utcnow
from distributor.errors import ValidationFailed
from distributor.mail import outgoing
from distributor.mail.addresses import RelayExtensions
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport
from distributor.organisation.services import get_organisation
from distributor.settings import Settings
from distributor.tasks_api import TaskRef, enqueue_after_commit

# The words next to the subscribe button. Change the text, bump the version: each confirmed
# subscription records which version its owner agreed to (GDPR Art. 7(1)).
SEND_CONFIRMATION = TaskRef("audience.send_confirmation")
CONSENT_TEXT_VERSION = "2026-11-24.1"
CONSENT_TEXT = (
    "Send me press releases on the beats I ticked. I can change my beats, pause or "
    "unsubscribe at any time from the link at the foot of every mail."
)
CONFIRMATION_INTERVAL = dt.timedelta(hours=24)

# Suppressions a person may end by opting in again themselves, with a confirmation request made
# after the suppression; the others (do-not-contact, hard bounce) are staff or mailbox
# decisions that a web form must not overturn.
SELF_LIFTABLE = frozenset(
    {SuppressionReason.UNSUBSCRIBED_ALL, SuppressionReason.COMPLAINT, SuppressionReason.ERASED}
)


class SubscribeOutcome(enum.StrEnum):
    """What a subscribe request did. Never shown to the requester (no enumeration)."""

    MAIL_QUEUED = "mail_queued"
    RECENTLY_MAILED = "recently_mailed"
    SUPPRESSED = "suppressed"
    HONEYPOT = "honeypot"


def ip_hash(settings: Settings, ip: str | None) -> str | None:
    """A keyed hash of the client address: evidence without storing the raw IP."""
    if not ip:
        return None
    key = settings.secret_key.encode("utf-8")
    return hmac.new(key, b"consent-ip:" + ip.encode("utf-8"), hashlib.sha256).hexdigest()


def _public_beats(session: Session, beat_ids: list[int]) -> list[Beat]:
    if not beat_ids:
        return []
    return list(
        session.scalars(
            select(Beat).where(Beat.id.in_(beat_ids), Beat.is_public.is_(True)).order_by(Beat.name)
        )
    )


def request_subscription(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    beat_ids: list[int],
    ip: str | None = None,
    honeypot: str = "",
    now: dt.datetime | None = None,
    relay: RelayExtensions | None = None,
) -> SubscribeOutcome:
    """Record a subscribe request and queue the double opt-in mail, at most once a day.

    Raises ``ValidationFailed`` only for what the form itself shows (address syntax, no beat):
    nothing about whether the address is already known.
    """
    now = now or utcnow()
    address = normalise_address(
        email, check_deliverability=settings.email_check_deliverability, relay=relay
    )
    beats = _public_beats(session, beat_ids)
    if not beats:
        raise ValidationFailed("Choose at least one beat")
    if honeypot.strip():
        return SubscribeOutcome.HONEYPOT

    suppression = find_suppression(session, address)
    if suppression is not None and suppression.reason not in SELF_LIFTABLE:
        return SubscribeOutcome.SUPPRESSED

    hashed = address_hash(address)
    recent = session.scalar(
        select(ConfirmationRequest.id)
        .where(
            ConfirmationRequest.address_hash == hashed,
            ConfirmationRequest.requested_at > now - CONFIRMATION_INTERVAL,
        )
        .limit(1)
    )
    if recent is not None:
        return SubscribeOutcome.RECENTLY_MAILED

    journalist = find_journalist(session, address)
    if journalist is None:
        journalist = Journalist(
            email=address,
            email_normalized=address,
            name=name.strip()[:200],
            lawful_basis=LawfulBasis.CONSENT,
            created_at=now,
        )
        session.add(journalist)
        session.flush()
    elif not journalist.name and name.strip():
        journalist.name = name.strip()[:200]
    existing = {s.beat_id for s in journalist.subscriptions}
    for beat in beats:
        if beat.id not in existing:
            journalist.subscriptions.append(
                Subscription(
                    beat_id=beat.id,
                    status=SubscriptionStatus.PENDING,
                    source="public_form",
                    created_at=now,
                )
            )
    request = ConfirmationRequest(
        address_hash=hashed,
        journalist_id=journalist.id,
        beat_ids=",".join(str(b.id) for b in beats),
        ip_hash=ip_hash(settings, ip),
        requested_at=now,
    )
    session.add(request)
    session.flush()
    enqueue_after_commit(session, SEND_CONFIRMATION, request.id)
    return SubscribeOutcome.MAIL_QUEUED


def build_confirmation(
    session: Session, request_id: int, *, settings: Settings, renderer: EmailRenderer
) -> outgoing.OutgoingMail | None:
    """Render the double opt-in mail of one request; None when there is nothing to send."""
    request = session.get(ConfirmationRequest, request_id)
    if request is None or request.journalist_id is None or request.mailed_at is not None:
        return None
    journalist = session.get(Journalist, request.journalist_id)
    if journalist is None:
        return None
    beat_ids = [int(b) for b in request.beat_ids.split(",") if b]
    beats = list(session.scalars(select(Beat).where(Beat.id.in_(beat_ids)).order_by(Beat.name)))
    token = tokens.confirm_token(
        settings, journalist.id, beat_ids, CONSENT_TEXT_VERSION, request_id=request.id
    )
    org = get_organisation(session, settings)
    base = settings.public_base_url.rstrip("/")
    # Nothing typed into the public form reaches this mail (not even the name): anyone can
    # make us send it to any address, so free text would turn it into a phishing relay
    # carrying our organisation's name and DKIM signature (OWASP: content spoofing).
    context = {
        "org": org,
        "beats": [b.name for b in beats],
        "confirm_url": f"{base}/subscribe/confirm/{token}",
        "valid_days": tokens.CONFIRM_MAX_AGE // 86400,
        "consent_text": CONSENT_TEXT,
    }
    rendered = renderer.render_email("subscription_confirm", context)
    return outgoing.build_transactional(
        settings,
        rendered=rendered,
        from_name=org.name,
        to_address=journalist.email,
        reply_to=org.press_email,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )


def mark_confirmation_mailed(session: Session, request_id: int) -> None:
    session.execute(
        update(ConfirmationRequest)
        .where(ConfirmationRequest.id == request_id)
        .values(mailed_at=utcnow())
    )


def deliver_confirmation(
    db: Database,
    request_id: int,
    *,
    settings: Settings,
    renderer: EmailRenderer,
    transport: MailTransport,
) -> bool:
    """Render, send and record one confirmation mail (what the worker task runs).

    No transaction stays open across the SMTP conversation: the dev inbox writes to the same
    database, and SQLite would refuse our later write after its commit.
    """
    with db.session() as session:
        mail = build_confirmation(session, request_id, settings=settings, renderer=renderer)
        session.rollback()
    if mail is None:
        return False
    outgoing.send(transport, mail)
    with db.session() as session:
        mark_confirmation_mailed(session, request_id)
        session.commit()
    return True


def unsent_confirmations(session: Session, *, now: dt.datetime | None = None) -> list[int]:
    """Requests still waiting for their mail a few minutes on (the broker lost the task)."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(ConfirmationRequest.id).where(
                ConfirmationRequest.mailed_at.is_(None),
                ConfirmationRequest.journalist_id.is_not(None),
                ConfirmationRequest.requested_at < now - dt.timedelta(minutes=2),
                ConfirmationRequest.requested_at > now - dt.timedelta(hours=6),
            )
        )
    )


@dataclass(frozen=True)
class ConfirmPreview:
    journalist: Journalist
    beats: list[Beat]


def preview_confirmation(session: Session, settings: Settings, token: str) -> ConfirmPreview:
    """What a confirm link would confirm; reads only (scanners fetch every link)."""
    payload = tokens.load_confirm_token(settings, token)
    journalist = session.get(Journalist, payload.journalist_id)
    if journalist is None:
        raise tokens.InvalidToken("This link is no longer valid.")
    beats = list(
        session.scalars(select(Beat).where(Beat.id.in_(payload.beat_ids)).order_by(Beat.name))
    )
    return ConfirmPreview(journalist, beats)


def confirm_subscription(
    session: Session,
    settings: Settings,
    token: str,
    *,
    ip: str | None = None,
    now: dt.datetime | None = None,
) -> ConfirmPreview:
    """Confirm the beats in ``token`` and record the consent evidence (Art. 7(1))."""
    now = now or utcnow()
    payload = tokens.load_confirm_token(settings, token)
    preview = preview_confirmation(session, settings, token)
    journalist = preview.journalist
    suppression = find_suppression(session, journalist.email)
    request = _request_for(session, payload)
    if request is not None and request.confirmed_at is not None:
        return preview  # a link works once; a second click changes nothing
    if suppression is not None:
        # Only a request made after the person left (or complained) may bring them back:
        # a link kept from before would undo their decision (GDPR Art. 7(3)).
        asked_at = request.requested_at if request is not None else None
        if (
            suppression.reason not in SELF_LIFTABLE
            or asked_at is None
            or asked_at < suppression.created_at
        ):
            raise tokens.InvalidToken(
                "This link is older than your last unsubscribe. "
                "Subscribe again to get a new confirmation mail."
            )
    if request is not None:
        request.confirmed_at = now
    by_beat = {s.beat_id: s for s in journalist.subscriptions}
    for beat in preview.beats:
        sub = by_beat.get(beat.id)
        if sub is None:
            sub = Subscription(beat_id=beat.id, source="public_form", created_at=now)
            journalist.subscriptions.append(sub)
        if sub.status == SubscriptionStatus.CONFIRMED and sub.consent_at is not None:
            continue  # a second click on the same link changes nothing
        sub.status = SubscriptionStatus.CONFIRMED
        sub.source = sub.source or "public_form"
        sub.consent_at = now
        sub.confirmed_at = now
        sub.unsubscribed_at = None
        sub.consent_method = "double_opt_in"
        sub.consent_text_version = payload.text_version or CONSENT_TEXT_VERSION
        sub.consent_ip_hash = ip_hash(settings, ip)
    journalist.lawful_basis = LawfulBasis.CONSENT
    if suppression is not None:
        record_lift(session, suppression, by=None, justification="journalist: new double opt-in")
    session.flush()
    return preview


def _request_for(session: Session, payload: tokens.ConfirmPayload) -> ConfirmationRequest | None:
    if payload.request_id is None:
        return None  # a link mailed before links were tied to their request
    request = session.get(ConfirmationRequest, payload.request_id)
    if request is None or request.journalist_id != payload.journalist_id:
        raise tokens.InvalidToken("This link is not valid.")
    return request
