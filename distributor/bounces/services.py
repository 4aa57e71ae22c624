"""Storing what came back, tying it to the delivery it is about, and applying the policy."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from distributor.bounces import policy
from distributor.bounces.models import (
    Bounce,
    BounceKind,
    Classification,
    Complaint,
    InboundMessage,
)
from distributor.bounces.parsing import FailedRecipient, ParsedReport, parse_message
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DigestMail
from distributor.logs import get_logger
from distributor.mail import verp
from distributor.settings import Settings

log = get_logger(__name__)

# The fallback match (failed address -> most recent delivery to it) only looks this far back:
# real bounces arrive within days, and an old delivery is no evidence for a new report.
ADDRESS_MATCH_DAYS = 30


def _header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:65536]


def _subject(raw: bytes) -> str:
    """The decoded Subject (RFC 2047 words included), or the raw one if it will not decode."""
    header_block = _header_block(raw)
    try:
        value = email.message_from_bytes(header_block, policy=email.policy.default)["Subject"]
    except Exception:  # a malformed header must not stop us from keeping the message
        value = email.message_from_bytes(header_block, policy=email.policy.compat32)["Subject"]
    return " ".join(str(value or "").split())


def dedupe_key_for(raw: bytes) -> str:
    """The inbound message's own Message-ID when it has one, else a hash of its bytes."""
    headers = email.message_from_bytes(_header_block(raw), policy=email.policy.compat32)
    message_id = str(headers.get("Message-ID", "")).strip()
    if message_id:
        return f"mid:{message_id[:280]}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def store_inbound(
    session: Session,
    *,
    source: str,
    raw: bytes,
    envelope_from: str = "",
    envelope_to: str = "",
    dedupe_key: str | None = None,
    subject: str | None = None,
) -> tuple[InboundMessage, bool]:
    """Keep the raw message; returns (row, created). A second copy returns the first row."""
    key = dedupe_key or dedupe_key_for(raw)
    existing = session.scalar(select(InboundMessage).where(InboundMessage.dedupe_key == key))
    if existing is not None:
        return existing, False
    if subject is None:
        subject = _subject(raw)
    inbound = InboundMessage(
        source=source,
        dedupe_key=key,
        envelope_from=envelope_from[:320],
        envelope_to=envelope_to[:320],
        subject=subject[:300],
        raw=raw,
        size=len(raw),
    )
    try:
        with session.begin_nested():
            session.add(inbound)
    except IntegrityError:
        # Another receiver stored the same message a moment ago.
        existing = session.scalar(select(InboundMessage).where(InboundMessage.dedupe_key == key))
        if existing is None:
            raise
        return existing, False
    return inbound, True


def _delivery_by_token(
    session: Session, settings: Settings, tokens: list[str], *, purpose: str
) -> Delivery | None:
    """The delivery a header token names: a MAC of its id for ``purpose`` (mail/verp.py).

    Mails sent before header tokens had their own MACs used the tracking token, which the body
    shows to anyone holding a forwarded copy. Such a token still counts, but only for a delivery
    whose recorded Message-ID is not of the new kind (it went out under the old scheme).
    """
    for token in tokens:
        named = verp.read(settings, purpose, token)
        if named is not None:
            kind, ident = named
            if kind == verp.DELIVERY:
                delivery = session.get(Delivery, ident)
            else:
                # A daily digest's deliveries share the digest's Message-ID.
                digest = session.get(DigestMail, ident)
                delivery = (
                    _delivery_by_message_id(session, [digest.message_id])
                    if digest is not None and digest.message_id
                    else None
                )
            if delivery is not None:
                return delivery
            continue
        legacy = session.scalar(select(Delivery).where(Delivery.verp_token == token))
        if legacy is not None and _sent_before_header_tokens(
            settings, legacy.message_id, verp.DELIVERY, legacy.id
        ):
            return legacy
        digest = session.scalar(select(DigestMail).where(DigestMail.verp_token == token))
        if (
            digest is not None
            and digest.message_id
            and _sent_before_header_tokens(settings, digest.message_id, verp.DIGEST, digest.id)
        ):
            delivery = _delivery_by_message_id(session, [digest.message_id])
            if delivery is not None:
                return delivery
    return None


def _sent_before_header_tokens(
    settings: Settings, message_id: str | None, kind: str, ident: int
) -> bool:
    return verp.make(settings, verp.MESSAGE_ID, kind, ident) not in (message_id or "")


def _delivery_by_message_id(session: Session, message_ids: list[str]) -> Delivery | None:
    for message_id in message_ids:
        bare = message_id.strip().strip("<>")
        delivery = session.scalar(
            select(Delivery)
            .where(Delivery.message_id.in_([bare, f"<{bare}>"]))
            .order_by(Delivery.id.desc())
            .limit(1)
        )
        if delivery is not None:
            return delivery
    return None


def _delivery_by_address(session: Session, address: str, now: dt.datetime) -> Delivery | None:
    if not address:
        return None
    since = now - dt.timedelta(days=ADDRESS_MATCH_DAYS)
    return session.scalar(
        select(Delivery)
        .where(
            func.lower(Delivery.email) == address.lower(),
            Delivery.sent_at.is_not(None),
            Delivery.sent_at >= since,
        )
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    )


def find_delivery(
    session: Session, settings: Settings, report: ParsedReport, address: str, now: dt.datetime
) -> tuple[Delivery | None, str]:
    """The delivery a report is about: by VERP token, then Message-ID, then address."""
    delivery = _delivery_by_token(session, settings, report.verp_tokens, purpose=verp.BOUNCE)
    if delivery is not None:
        return delivery, "verp"
    delivery = _delivery_by_message_id(session, report.original_message_ids)
    if delivery is not None:
        return delivery, "message-id"
    delivery = _delivery_by_address(session, address, now)
    if delivery is not None:
        return delivery, "address"
    return None, ""


def _record_bounce(
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    report: ParsedReport,
    failed: FailedRecipient,
    *,
    is_authenticated: bool,
) -> Bounce:
    delivery, matched_by = find_delivery(
        session, settings, report, failed.address, inbound.received_at
    )
    address = (delivery.email if delivery is not None and delivery.email else failed.address) or ""
    bounce = Bounce(
        inbound_message=inbound,
        delivery=delivery,
        email=address.lower() or None,
        kind=failed.kind,
        status_code=failed.status[:16],
        action=failed.action[:20],
        diagnostic=failed.diagnostic[:2000],
        remote_mta=failed.remote_mta[:255],
        matched_by=matched_by,
        received_at=inbound.received_at,
    )
    session.add(bounce)
    session.flush()
    policy.apply_bounce(session, settings, bounce, is_authenticated=is_authenticated)
    return bounce


def _record_complaint(
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    report: ParsedReport,
    *,
    is_authenticated: bool,
) -> Complaint:
    assert report.feedback is not None
    address = report.feedback.original_rcpt_to
    delivery, matched_by = find_delivery(session, settings, report, address, inbound.received_at)
    if delivery is not None and delivery.email:
        address = delivery.email
    complaint = Complaint(
        inbound_message=inbound,
        delivery=delivery,
        email=address.lower() or None,
        feedback_type=report.feedback.feedback_type[:40],
        user_agent=report.feedback.user_agent[:255],
        matched_by=matched_by,
        received_at=inbound.received_at,
    )
    session.add(complaint)
    session.flush()
    policy.apply_complaint(session, complaint, is_authenticated=is_authenticated)
    return complaint


def process_inbound(
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    report: ParsedReport | None = None,
) -> InboundMessage:
    """Classify a stored message and act on it, once: a processed row is left as it is."""
    if inbound.processed_at is not None:
        return inbound
    if report is None and _process_unsubscribe_mail(session, settings, inbound):
        return inbound
    if report is None:
        report = parse_message(
            inbound.raw or b"",
            envelope_to=[a for a in inbound.envelope_to.split(",") if a],
            bounce_domain=settings.bounce_domain,
        )
    is_authenticated = inbound.source.startswith("webhook-")
    summary = report.summary
    if report.classification is Classification.BOUNCE:
        seen: set[str] = set()
        for failed in report.recipients:
            if failed.address in seen:
                continue
            seen.add(failed.address)
            bounce = _record_bounce(
                session, settings, inbound, report, failed, is_authenticated=is_authenticated
            )
            if bounce.delivery is None:
                summary += f" [{failed.address}: no matching delivery]"
    elif report.classification is Classification.COMPLAINT:
        complaint = _record_complaint(
            session, settings, inbound, report, is_authenticated=is_authenticated
        )
        if complaint.delivery is None:
            summary += " [no matching delivery]"
    inbound.classification = report.classification
    inbound.summary = f"{report.detector}: {summary}" if report.detector else summary
    inbound.processed_at = utcnow()
    session.flush()
    return inbound


def _unsubscribe_tokens(envelope_to: str, bounce_domain: str) -> list[str]:
    """Tokens of ``unsubscribe+<token>@<bounce domain>`` recipients (our mailto unsubscribe)."""
    tokens = []
    for address in envelope_to.split(","):
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower().rstrip(".") != bounce_domain.lower().rstrip("."):
            continue
        prefix, plus, token = local.partition("+")
        if plus and prefix.lower() == "unsubscribe" and token:
            tokens.append(token)
    return tokens


def _process_unsubscribe_mail(
    session: Session, settings: Settings, inbound: InboundMessage
) -> bool:
    """A mail to the List-Unsubscribe mailto address unsubscribes its journalist from everything.

    Gmail and others send it for their own unsubscribe button when there is no one-click URL
    they trust (RFC 2369); it must take effect at once, like the one-click POST.
    """
    from distributor.audience.preferences import unsubscribe_all

    tokens = _unsubscribe_tokens(inbound.envelope_to, settings.bounce_domain)
    if not tokens:
        return False
    delivery = _delivery_by_token(session, settings, tokens, purpose=verp.UNSUBSCRIBE)
    if delivery is not None and delivery.journalist_id is not None:
        unsubscribe_all(
            session, delivery.journalist_id, note="unsubscribed by mail (List-Unsubscribe mailto)"
        )
        inbound.summary = f"unsubscribe by mail for delivery {delivery.id}"
    else:
        inbound.summary = "unsubscribe by mail: no matching delivery"
    inbound.classification = Classification.UNSUBSCRIBE
    inbound.processed_at = utcnow()
    session.flush()
    return True


def receive_message(
    session: Session,
    settings: Settings,
    *,
    source: str,
    raw: bytes,
    envelope_from: str = "",
    envelope_to: str = "",
) -> InboundMessage:
    """Store a raw inbound message (SMTP, IMAP, POP3) and process it."""
    inbound, _created = store_inbound(
        session, source=source, raw=raw, envelope_from=envelope_from, envelope_to=envelope_to
    )
    return process_inbound(session, settings, inbound)


def process_pending(
    session: Session,
    settings: Settings,
    *,
    limit: int = 200,
    older_than: dt.timedelta = dt.timedelta(minutes=2),
    now: dt.datetime | None = None,
) -> int:
    """Process rows stored but not processed (e.g. the receiver stopped in between).

    Only rows older than ``older_than``, and none the receiver is reading right now (it holds
    the row's lock), so a backlog in the receiver is not read twice.
    """
    cutoff = (now or utcnow()) - older_than
    rows = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.processed_at.is_(None), InboundMessage.received_at <= cutoff)
        .order_by(InboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for inbound in rows:
        try:
            with session.begin_nested():
                process_inbound(session, settings, inbound)
        except Exception as exc:
            # Park it as unrecognised (raw kept for a human) rather than retry it forever.
            log.exception("bounces.process_failed", id=inbound.id)
            inbound.classification = Classification.UNRECOGNISED
            inbound.summary = f"processing failed: {type(exc).__name__}: {exc}"[:1000]
            inbound.processed_at = utcnow()
            session.flush()
    return len(rows)


def purge_raw(session: Session, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """Forget raw messages older than the retention period; the classification rows stay."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=settings.bounce_raw_retention_days)
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.received_at < cutoff, InboundMessage.raw.is_not(None))
        .values(raw=None, raw_purged_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def recent_bounces(session: Session, *, limit: int = 100) -> list[Bounce]:
    """The latest bounces, newest first, for the staff page."""
    return list(
        session.scalars(
            select(Bounce)
            .options(joinedload(Bounce.inbound_message))
            .order_by(Bounce.received_at.desc(), Bounce.id.desc())
            .limit(limit)
        )
    )


def recent_complaints(session: Session, *, limit: int = 100) -> list[Complaint]:
    """The latest complaints, newest first."""
    return list(
        session.scalars(
            select(Complaint)
            .options(joinedload(Complaint.inbound_message))
            .order_by(Complaint.received_at.desc(), Complaint.id.desc())
            .limit(limit)
        )
    )


def recent_inbound(session: Session, *, limit: int = 50) -> list[InboundMessage]:
    """Everything received lately, whatever it was classified as."""
    return list(
        session.scalars(
            select(InboundMessage)
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class PolicyRejection:
    delivery: Delivery
    reason: str  # the receiver's words: from the DSN when it came back later, else the SMTP reply


def policy_rejections(session: Session, *, limit: int = 50) -> list[PolicyRejection]:
    """Deliveries a receiver refused for policy or authentication reasons (5.7.x)."""
    deliveries = list(
        session.scalars(
            select(Delivery)
            .where(Delivery.is_policy_rejection.is_(True))
            .order_by(Delivery.updated_at.desc())
            .limit(limit)
        )
    )
    reasons: dict[int, str] = {}
    if deliveries:
        rows = session.execute(
            select(Bounce.delivery_id, Bounce.status_code, Bounce.diagnostic)
            .where(
                Bounce.delivery_id.in_([d.id for d in deliveries]),
                Bounce.kind == BounceKind.POLICY,
            )
            .order_by(Bounce.received_at)
        )
        for delivery_id, status_code, diagnostic in rows:
            if delivery_id is not None:
                reasons[delivery_id] = f"{status_code} {diagnostic}".strip()
    return [PolicyRejection(d, reasons.get(d.id) or d.smtp_response) for d in deliveries]


def forget_address(session: Session, email_address: str) -> int:
    """Erasure: blank the address on bounce and complaint rows and drop their raw messages.

    The rows stay (counts and rates are still true); nothing that names the person does.
    Returns how many bounce and complaint rows named the address.
    """
    address = email_address.strip().lower()
    inbound_ids: set[int] = set()
    total = 0
    for model in (Bounce, Complaint):
        ids = session.scalars(select(model.inbound_message_id).where(model.email == address))
        inbound_ids.update(ids)
        result = session.execute(
            update(model)
            .where(model.email == address)
            .values(email=None)
            .execution_options(synchronize_session=False)
        )
        total += int(getattr(result, "rowcount", 0) or 0)
    if inbound_ids:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(inbound_ids))
            .values(
                raw=None,
                raw_purged_at=utcnow(),
                summary="(erased)",
                subject="",
                envelope_to="",
            )
            .execution_options(synchronize_session=False)
        )
    return total
