"""A sent release with deliveries, tracking events, bounces and complaints: demo data and fixtures.

Built through the tracking services (``register_links``, ``store_events``, ``classify_pending``)
so that what the demo shows is what real traffic would produce.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets

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
) -> Release:
    """Create a sent release with ``recipients`` deliveries and realistic engagement."""
    rng = random.Random(seed)
    sent_at = sent_at or utcnow() - dt.timedelta(days=2)
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

    statuses = (
        [DeliveryStatus.SENT] * 16
        + [DeliveryStatus.DEFERRED, DeliveryStatus.FAILED]
        + [DeliveryStatus.IN_DOUBT]
    )
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
            smtp_code=250
            if status == DeliveryStatus.SENT
            else (550 if status == DeliveryStatus.FAILED else 451),
            attempts=1,
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
        if 0.2 < roll < 0.75:  # a person reads, hours later, sometimes a second time
            first = d.sent_at + dt.timedelta(hours=rng.randrange(1, 40), minutes=rng.randrange(60))
            events.append(_event("open", d, first, HUMAN_UA))
            if rng.random() < 0.3:
                events.append(_event("open", d, first + dt.timedelta(hours=5), GMAIL_PROXY_UA))
            if rng.random() < 0.5:
                link = link_ids[rng.randrange(len(link_ids))]
                events.append(_event("click", d, first + dt.timedelta(minutes=1), HUMAN_UA, link))
    tracking.store_events(session, events)
    tracking.classify_pending(session)
    _seed_bounces(session, deliveries, rng)
    return release


def _seed_bounces(session: Session, deliveries: list[Delivery], rng: random.Random) -> None:
    from distributor.bounces.models import (
        Bounce,
        BounceKind,
        Classification,
        Complaint,
        InboundMessage,
    )

    for d in deliveries:
        if d.status == DeliveryStatus.FAILED or (
            d.status == DeliveryStatus.SENT and rng.random() < 0.05
        ):
            hard = d.status == DeliveryStatus.FAILED
            message = InboundMessage(
                source="smtp",
                dedupe_key=f"sample-{d.verp_token}",
                classification=Classification.BOUNCE,
                received_at=(d.sent_at or d.created_at) + dt.timedelta(minutes=5),
            )
            session.add(message)
            session.flush()
            session.add(
                Bounce(
                    inbound_message_id=message.id,
                    delivery_id=d.id,
                    email=d.email,
                    kind=BounceKind.HARD if hard else BounceKind.SOFT,
                    status_code="5.1.1" if hard else "4.2.2",
                    action="failed" if hard else "delayed",
                    matched_by="verp",
                    received_at=message.received_at,
                )
            )
    complained = next(
        (d for d in deliveries if d.status == DeliveryStatus.SENT and d.sent_at is not None), None
    )
    if complained is not None and complained.sent_at is not None:
        message = InboundMessage(
            source="smtp",
            dedupe_key=f"sample-arf-{complained.verp_token}",
            classification=Classification.COMPLAINT,
            received_at=complained.sent_at + dt.timedelta(hours=6),
        )
        session.add(message)
        session.flush()
        session.add(
            Complaint(
                inbound_message_id=message.id,
                delivery_id=complained.id,
                email=complained.email,
                matched_by="verp",
                received_at=message.received_at,
            )
        )
    session.flush()


def seed_reports_demo(session: Session, settings: Settings) -> list[str]:
    """Demo seeder: two sent releases with engagement, once."""
    if session.scalar(select(Release.id).where(Release.slug.like("demo-report-%")).limit(1)):
        return []
    now = utcnow()
    seed_sent_release(
        session, recipients=60, sent_at=now - dt.timedelta(days=9), prefix="demo-report", seed=1
    )
    seed_sent_release(
        session,
        title="Harbour wall repairs to finish before winter storms",
        recipients=45,
        sent_at=now - dt.timedelta(days=3),
        prefix="demo-report",
        seed=2,
    )
    return ["Reports: two sent releases with deliveries, opens and clicks"]
