"""A sent release with deliveries, tracking events, bounces and complaints: demo data and fixtures.

Built through the tracking services (``register_links``, ``store_events``, ``classify_pending``)
so that what the demo shows is what real traffic would produce.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from email.utils import format_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Beat, Journalist, Outlet, Subscription, SubscriptionStatus
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.releases.models import Release, ReleaseKind, ReleaseStatus
from distributor.settings import Settings
from distributor.tracking import services as tracking
from distributor.tracking.buffer import RawEvent
from distributor.tracking.links import register_links

HUMAN_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
SCANNER_UA = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"
APPLE_MPP_UA = "Mozilla/5.0"
GMAIL_PROXY_UA = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)

SAMPLE_LINKS = [
    "https://harbourlight.example/reports/coastal-erosion-2026",
    "https://harbourlight.example/data/erosion.csv",
    "https://harbourlight.example/press/photos",
]


def _get_or_create_kind(session: Session) -> ReleaseKind:
    from distributor.releases.services import ensure_default_kinds

    return ensure_default_kinds(session)[0]


def _beat(session: Session, name: str) -> Beat:
    slug = name.lower().replace(" ", "-")
    beat = session.scalar(select(Beat).where(Beat.slug == slug))
    if beat is None:
        beat = Beat(name=name, slug=slug)
        session.add(beat)
        session.flush()
    return beat


def _outlet(session: Session, name: str) -> Outlet:
    outlet = session.scalar(select(Outlet).where(Outlet.name == name))
    if outlet is None:
        outlet = Outlet(name=name)
        session.add(outlet)
        session.flush()
    return outlet


def _event(
    kind: str,
    delivery: Delivery,
    at: dt.datetime,
    ua: str,
    link_id: int | None = None,
    method: str = "GET",
) -> RawEvent:
    return RawEvent(
        uid=secrets.token_hex(16),
        kind=kind,
        token=delivery.verp_token,
        link_id=link_id,
        occurred_at=at.timestamp(),
        method=method,
        user_agent=ua,
    )


def seed_sent_release(
    session: Session,
    *,
    title: str = "Coastal erosion doubled in a decade, new survey finds",
    recipients: int = 40,
    sent_at: dt.datetime | None = None,
    seed: int = 7,
    prefix: str = "sample",
    settings: Settings | None = None,
) -> Release:
    """Create a sent release with ``recipients`` deliveries and realistic engagement.

    Opens, clicks, bounce reports and complaints all come after the message went out and
    before now; bounce reports and complaints are real RFC 3464 and RFC 5965 messages put
    through the bounce pipeline, so they are recognised, processed once, and never swept again.
    """
    rng = random.Random(seed)
    now = utcnow()
    sent_at = sent_at or now - dt.timedelta(days=2)
    beats = [_beat(session, n) for n in ("Climate", "Coastal communities", "Science")]
    outlets = [_outlet(session, n) for n in ("Portmere Gazette", "Coast FM", "The Tidewater")]
    release = Release(
        kind_id=_get_or_create_kind(session).id,
        title=title,
        slug=f"{prefix}-{secrets.token_hex(4)}",
        summary="A ten-year survey of the coastline.",
        body_markdown="The survey found that erosion doubled.",
        status=ReleaseStatus.SENT,
        published_at=sent_at,
        preview_token=secrets.token_urlsafe(24),
    )
    session.add(release)
    session.flush()
    send = Send(
        release_id=release.id,
        status=SendStatus.FINISHED,
        started_at=sent_at,
        finished_at=sent_at + dt.timedelta(minutes=3),
        recipient_count=recipients,
    )
    session.add(send)
    session.flush()
    link_ids = list(register_links(session, release.id, SAMPLE_LINKS).values())

    # A finished send: every message went out, was refused at RCPT, or is in doubt (nothing
    # is still deferred days later: the retry lifetime is over).
    statuses = [DeliveryStatus.SENT] * 17 + [DeliveryStatus.FAILED, DeliveryStatus.IN_DOUBT]
    deliveries: list[Delivery] = []
    for n in range(recipients):
        beat = beats[n % len(beats)]
        email = f"{prefix}.{release.id}.{n}@{['gazette', 'coastfm', 'tidewater'][n % 3]}.example"
        journalist = Journalist(
            email=email,
            email_normalized=email,
            name=f"Reporter {n + 1}",
            outlet_id=outlets[n % len(outlets)].id,
        )
        session.add(journalist)
        session.flush()
        session.add(
            Subscription(
                journalist_id=journalist.id,
                beat_id=beat.id,
                status=SubscriptionStatus.CONFIRMED,
                source="staff",
            )
        )
        status = statuses[rng.randrange(len(statuses))]
        at = sent_at + dt.timedelta(seconds=rng.randrange(0, 180))
        delivery = Delivery(
            send_id=send.id,
            release_id=release.id,
            journalist_id=journalist.id,
            email=email,
            recipient_domain=email.rpartition("@")[2],
            status=status,
            matched_beats=beat.name,
            sent_at=at if status == DeliveryStatus.SENT else None,
            verp_token=secrets.token_urlsafe(18),
            smtp_code={DeliveryStatus.SENT: 250, DeliveryStatus.FAILED: 550}.get(status),
            smtp_response={
                DeliveryStatus.SENT: "2.0.0 Ok: queued",
                DeliveryStatus.FAILED: f"5.1.1 <{email}>: Recipient address rejected: "
                "User unknown in virtual mailbox table",
                DeliveryStatus.IN_DOUBT: "connection lost after the final dot, no reply",
            }[status],
            attempts=1,
            # Dated with the send, not with the moment the demo was seeded.
            first_attempt_at=at,
            created_at=sent_at,
            updated_at=at,
        )
        session.add(delivery)
        deliveries.append(delivery)
    session.flush()

    events: list[RawEvent] = []
    for d in deliveries:
        if d.sent_at is None:
            continue
        roll = rng.random()
        if roll < 0.25:  # Apple Mail Privacy Protection prefetch, minutes after delivery
            events.append(_event("open", d, d.sent_at + dt.timedelta(minutes=2), APPLE_MPP_UA))
        if roll < 0.1:  # a link scanner opens and clicks every link at once
            for link in link_ids:
                events.append(
                    _event("click", d, d.sent_at + dt.timedelta(seconds=3), SCANNER_UA, link)
                )
        if 0.2 < roll < 0.75 and d.sent_at + dt.timedelta(hours=41) < now:
            # A person reads, hours later, sometimes a second time.
            first = d.sent_at + dt.timedelta(hours=rng.randrange(1, 40), minutes=rng.randrange(60))
            events.append(_event("open", d, first, HUMAN_UA))
            if rng.random() < 0.3:
                events.append(_event("open", d, first + dt.timedelta(hours=5), GMAIL_PROXY_UA))
            if rng.random() < 0.5:
                link = link_ids[rng.randrange(len(link_ids))]
                events.append(_event("click", d, first + dt.timedelta(minutes=1), HUMAN_UA, link))
    tracking.store_events(session, events)
    tracking.classify_pending(session)
    _seed_reports(session, settings or Settings(), deliveries, rng, now)
    return release


_DSN = """\
Return-Path: <>
From: MAILER-DAEMON@mx.{domain} (Mail Delivery System)
To: bounces+{token}@{bounce_domain}
Subject: Undelivered Mail Returned to Sender
Date: {date}
Message-ID: <dsn.{token}@mx.{domain}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b-{token}"

--b-{token}
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

<{email}>: host mx.{domain} said: 550 {status} {words}

--b-{token}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{domain}

Final-Recipient: rfc822; {email}
Action: failed
Status: {status}
Remote-MTA: dns; mx.{domain}
Diagnostic-Code: smtp; 550 {status} {words}

--b-{token}
Content-Type: text/rfc822-headers

Return-Path: <bounces+{token}@{bounce_domain}>
To: {email}

--b-{token}--
"""

_ARF = """\
From: feedbackloop@mailbox-provider.example
To: bounces+{token}@{bounce_domain}
Subject: Complaint about message
Date: {date}
Message-ID: <arf.{token}@mailbox-provider.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="f-{token}"

--f-{token}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for a message you sent.

--f-{token}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: DemoFBL/1.0
Version: 1
Original-Rcpt-To: {email}

--f-{token}
Content-Type: text/rfc822-headers

Return-Path: <bounces+{token}@{bounce_domain}>
To: {email}

--f-{token}--
"""


def _dsn(d: Delivery, settings: Settings, at: dt.datetime, *, hard: bool) -> bytes:
    """A Postfix-style RFC 3464 delivery status notification for ``d``."""
    status, words = (
        ("5.1.1", "Recipient address rejected: User unknown in virtual mailbox table")
        if hard
        else ("5.2.2", "Mailbox full: quota exceeded")
    )
    return _fill(_DSN, d, settings, at, status=status, words=words)


def _arf(d: Delivery, settings: Settings, at: dt.datetime) -> bytes:
    """An RFC 5965 abuse report for ``d``, as a mailbox provider's feedback loop sends it."""
    return _fill(_ARF, d, settings, at)


def _fill(template: str, d: Delivery, settings: Settings, at: dt.datetime, **more: str) -> bytes:
    text = template.format(
        domain=d.recipient_domain or "example.org",
        token=d.verp_token,
        bounce_domain=settings.bounce_domain,
        email=d.email,
        date=format_datetime(at),
        **more,
    )
    return text.replace("\n", "\r\n").encode("ascii")


def _receive(
    session: Session, settings: Settings, d: Delivery, raw: bytes, at: dt.datetime, key: str
) -> None:
    from distributor.bounces.services import process_inbound, store_inbound

    inbound, _ = store_inbound(
        session,
        source="smtp",
        raw=raw,
        envelope_from="",
        envelope_to=f"bounces+{d.verp_token}@{settings.bounce_domain}",
        dedupe_key=key,
    )
    inbound.received_at = at  # when it arrived, after the message went out
    process_inbound(session, settings, inbound)


def _seed_reports(
    session: Session,
    settings: Settings,
    deliveries: list[Delivery],
    rng: random.Random,
    now: dt.datetime,
) -> None:
    """Bounce reports for about 5% of accepted messages and one complaint, all in the past."""
    for d in deliveries:
        if d.status == DeliveryStatus.SENT and d.sent_at is not None and rng.random() < 0.05:
            at = min(now, d.sent_at + dt.timedelta(minutes=rng.randrange(2, 30)))
            raw = _dsn(d, settings, at, hard=rng.random() < 0.5)
            _receive(session, settings, d, raw, at, f"sample-{d.verp_token}")
    complained = next(
        (d for d in deliveries if d.status == DeliveryStatus.SENT and d.sent_at is not None), None
    )
    if complained is not None and complained.sent_at is not None:
        at = min(now, complained.sent_at + dt.timedelta(hours=6))
        raw = _arf(complained, settings, at)
        _receive(session, settings, complained, raw, at, f"sample-arf-{complained.verp_token}")
    session.flush()


def seed_reports_demo(session: Session, settings: Settings) -> list[str]:
    """Demo seeder: two sent releases with engagement, once."""
    if session.scalar(select(Release.id).where(Release.slug.like("demo-report-%")).limit(1)):
        return []
    now = utcnow()
    seed_sent_release(
        session,
        recipients=60,
        sent_at=now - dt.timedelta(days=9),
        prefix="demo-report",
        seed=1,
        settings=settings,
    )
    seed_sent_release(
        session,
        title="Harbour wall repairs to finish before winter storms",
        recipients=45,
        sent_at=now - dt.timedelta(days=3),
        prefix="demo-report",
        seed=2,
        settings=settings,
    )
    return ["Reports: two sent releases with deliveries, opens and clicks"]
