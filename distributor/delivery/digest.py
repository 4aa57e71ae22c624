"""Daily digests for journalists who chose one mail a day instead of one per release.

When a send starts, the engine freezes digest-mode journalists as deliveries in status
``digest``. A sweep (every 15 minutes) sends each such journalist one digest per day, from
``DIGEST_HOUR`` in the organisation's time zone. A ``DigestMail`` row under a unique
(journalist, day) constraint is committed *before* the SMTP hand-over, so a rerun, a second
beat process or a redelivered task finds the day taken and sends nothing twice. A crash
between hand-over and the final commit leaves the row in ``sending``: its outcome is unknown,
so it is never resent by itself (RFC 1047) and its releases are not repeated.
"""

from __future__ import annotations

import datetime as dt
import secrets
import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.audience import tokens
from distributor.audience.models import Journalist
from distributor.db import utcnow
from distributor.delivery.ledger import move_delivery
from distributor.delivery.mime import HeaderSet, MessageTemplate, SlotMarkers
from distributor.delivery.models import Delivery, DeliveryStatus, DigestMail, DigestStatus
from distributor.delivery.recipients import suppressed_ids
from distributor.delivery.release_context import embargo_label, public_release_url
from distributor.logs import get_logger
from distributor.mail import outgoing, verp
from distributor.mail.addresses import wire_address
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport, SMTPUTF8NotOffered
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release, ReleaseStatus
from distributor.settings import Settings

log = get_logger("distributor.delivery.digest")


@lru_cache(maxsize=1)
def _renderer() -> EmailRenderer:
    return EmailRenderer()


def digest_day(now: dt.datetime, settings: Settings, tz_name: str) -> dt.date | None:
    """Today's date in the organisation's zone once ``DIGEST_HOUR`` has passed, else None."""
    local = now.astimezone(ZoneInfo(tz_name))
    return local.date() if local.hour >= settings.digest_hour else None


def due_journalists(session: Session, day: dt.date) -> list[int]:
    """Journalists with releases waiting for a digest who have not had one on ``day``."""
    taken = exists().where(
        DigestMail.journalist_id == Delivery.journalist_id, DigestMail.digest_date == day
    )
    rows = session.scalars(
        select(Delivery.journalist_id)
        .where(
            Delivery.status == DeliveryStatus.DIGEST,
            Delivery.claim_id.is_(None),  # digest rows are never claimed: their index
            Delivery.journalist_id.is_not(None),
            ~taken,
        )
        .distinct()
        .order_by(Delivery.journalist_id)
    )
    return [int(r) for r in rows if r is not None]


def _pending(session: Session, journalist_id: int) -> list[Delivery]:
    # Releases already handed to an earlier digest (even one whose outcome is unknown) are
    # not repeated.
    earlier = session.scalars(
        select(DigestMail.release_ids).where(
            DigestMail.journalist_id == journalist_id,
            DigestMail.status != DigestStatus.FAILED,
        )
    )
    already = {int(i) for ids in earlier for i in ids.split(",") if i}
    deliveries = session.scalars(
        select(Delivery)
        .where(
            Delivery.journalist_id == journalist_id,
            Delivery.claim_id.is_(None),
            Delivery.status == DeliveryStatus.DIGEST,
        )
        .order_by(Delivery.id)
    ).all()
    return [d for d in deliveries if d.release_id not in already]


def claim_digest(session: Session, journalist_id: int, day: dt.date) -> int | None:
    """Take ``day``'s digest for the journalist; None when taken or nothing is left to send."""
    deliveries = _pending(session, journalist_id)
    if not deliveries:
        return None
    gone = suppressed_ids(session, [d.id for d in deliveries])
    journalist = session.get(Journalist, journalist_id)
    keep: list[Delivery] = []
    for d in deliveries:
        release = session.get(Release, d.release_id)
        if (
            d.id in gone
            or d.email is None
            or journalist is None
            or journalist.erased_at
            or release is None
            or release.status is ReleaseStatus.WITHDRAWN
        ):
            move_delivery(d, DeliveryStatus.CANCELLED)
        else:
            keep.append(d)
    if not keep:
        return None
    digest = DigestMail(
        journalist_id=journalist_id,
        digest_date=day,
        status=DigestStatus.SENDING,
        verp_token=secrets.token_urlsafe(16),
        release_ids=",".join(str(d.release_id) for d in keep),
    )
    try:
        with session.begin_nested():
            session.add(digest)
    except IntegrityError:
        return None  # another sweep took this day
    return digest.id


@dataclass(frozen=True)
class DigestMessage:
    envelope_from: str
    recipient: str
    message_id: str
    raw: bytes


def build_digest(session: Session, digest: DigestMail, settings: Settings) -> DigestMessage:
    """Render the digest mail with the same header discipline as release mail."""
    org = get_organisation(session, settings)
    journalist = session.get(Journalist, digest.journalist_id)
    if journalist is None:
        raise ValueError("journalist is gone")
    ids = [int(i) for i in digest.release_ids.split(",") if i]
    releases = session.scalars(select(Release).where(Release.id.in_(ids)).order_by(Release.id))
    base = settings.public_base_url
    unsubscribe = f"{base}/unsubscribe/{tokens.unsubscribe_token(settings, journalist.id)}"
    context = {
        "org": org,
        "day": digest.digest_date.strftime("%A %d %B %Y").replace(" 0", " "),
        "releases": [
            {
                "title": r.title,
                "kind": r.kind.name if r.kind else "Press release",
                "summary": r.summary,
                "url": public_release_url(settings, r),
                "embargo": embargo_label(r.embargo_until, org.timezone)
                if r.embargo_until and r.embargo_until > utcnow()
                else None,
            }
            for r in releases
        ],
        "recipient": {
            "name": journalist.name or journalist.email,
            "email": journalist.email,
            "preferences_url": f"{base}/preferences/"
            f"{tokens.preferences_token(settings, journalist.id)}",
            "unsubscribe_url": unsubscribe,
        },
    }
    rendered = _renderer().render_email("digest", context)
    template = MessageTemplate.compile(
        markers=SlotMarkers(),
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_name=org.name,
        from_address=settings.mail_from,
        reply_to=org.press_email,
        list_id=f"{org.name} releases <releases.{settings.from_domain}>",
        feedback_id=f"{digest.digest_date.isoformat()}:digest:digest:{settings.from_domain}",
    )
    # Single-purpose header tokens (distributor/mail/verp.py), as for release mails.
    mid = verp.make(settings, verp.MESSAGE_ID, verp.DIGEST, digest.id)
    message_id = f"<digest.{digest.id}.{mid}@{settings.from_domain}>"
    unsub_token = verp.make(settings, verp.UNSUBSCRIBE, verp.DIGEST, digest.id)
    mailto = f"mailto:unsubscribe+{unsub_token}@{settings.bounce_domain}?subject=unsubscribe"
    raw = template.fill(
        HeaderSet(
            message_id=message_id,
            to_name=journalist.name,
            to_address=journalist.email,
            list_unsubscribe=f"<{unsubscribe}>,\r\n <{mailto}>",
        ),
        {},
    )
    bounce_token = verp.make(settings, verp.BOUNCE, verp.DIGEST, digest.id)
    return DigestMessage(
        outgoing.verp_sender(settings, bounce_token),
        wire_address(journalist.email),
        message_id,
        outgoing.sign(settings, raw),
    )


def deliver_digest(
    session: Session, digest_id: int, *, settings: Settings, transport: MailTransport
) -> DigestStatus | None:
    """Send a claimed digest and record the outcome on it and on its deliveries."""
    digest = session.get(DigestMail, digest_id)
    if digest is None or digest.status is not DigestStatus.SENDING or digest.sent_at:
        return None
    message = build_digest(session, digest, settings)
    ids = [int(i) for i in digest.release_ids.split(",") if i]
    deliveries = session.scalars(
        select(Delivery).where(
            Delivery.journalist_id == digest.journalist_id,
            Delivery.release_id.in_(ids),
            Delivery.claim_id.is_(None),
            Delivery.status == DeliveryStatus.DIGEST,
        )
    ).all()
    now = utcnow()
    try:
        transport.send(message.envelope_from, [message.recipient], message.raw)
    except SMTPUTF8NotOffered as exc:
        # Nothing was handed over; the relay cannot carry this address (RFC 6531).
        digest.status = DigestStatus.FAILED
        digest.smtp_response = exc.reason[:2000]
        for d in deliveries:
            d.smtp_code, d.smtp_response = None, exc.reason[:2000]
            move_delivery(d, DeliveryStatus.FAILED)
        return DigestStatus.FAILED
    except smtplib.SMTPServerDisconnected:
        # The connection dropped; it may have been after the final dot. Leave it unknown.
        log.warning("digest outcome unknown", digest_id=digest.id)
        return DigestStatus.SENDING
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
        code, text = _reply(exc)
        if code >= 500:
            digest.status = DigestStatus.FAILED
            digest.smtp_response = f"{code} {text}"[:2000]
            for d in deliveries:
                d.smtp_code, d.smtp_response = code, text[:2000]
                move_delivery(d, DeliveryStatus.FAILED)
            return DigestStatus.FAILED
        _release_claim(session, digest)
        return None
    except (smtplib.SMTPException, OSError):
        _release_claim(session, digest)  # never reached the server: the next sweep retries
        return None
    digest.status = DigestStatus.SENT
    digest.sent_at = now
    digest.message_id = message.message_id
    for d in deliveries:
        d.sent_at = now
        d.message_id = message.message_id
        move_delivery(d, DeliveryStatus.SENT)
    return DigestStatus.SENT


def _release_claim(session: Session, digest: DigestMail) -> None:
    session.execute(delete(DigestMail).where(DigestMail.id == digest.id))


def _reply(exc: smtplib.SMTPException) -> tuple[int, str]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return int(code), text.decode("utf-8", "replace")
    assert isinstance(exc, smtplib.SMTPResponseException)
    raw = exc.smtp_error
    return int(exc.smtp_code), raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def sweep_digests(
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    *,
    now: dt.datetime,
    settings: Settings,
    transport: MailTransport,
) -> int:
    """Send today's digest to every journalist who has one due; returns how many went out.

    Each journalist takes two units of work: the claim commits before the SMTP hand-over, the
    outcome after it.
    """
    with unit_of_work() as session:
        org = get_organisation(session, settings)
        day = digest_day(now, settings, org.timezone)
        if day is None:
            return 0
        journalist_ids = due_journalists(session, day)
    sent = 0
    for journalist_id in journalist_ids:
        with unit_of_work() as session:
            digest_id = claim_digest(session, journalist_id, day)
        if digest_id is None:
            continue
        with unit_of_work() as session:
            outcome = deliver_digest(session, digest_id, settings=settings, transport=transport)
        sent += outcome is DigestStatus.SENT
    if sent:
        log.info("digests sent", count=sent, day=day.isoformat())
    return sent
