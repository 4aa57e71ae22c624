"""Factories for release-mail tests: a release with every block, journalists, a send."""

from __future__ import annotations

import datetime as dt
import secrets
from itertools import count

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Beat, Journalist
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.organisation.models import Organisation
from distributor.releases.models import Attachment, PressContact, Release, ReleaseKind
from distributor.settings import Settings

_n = count(1)

BODY_HTML = (
    "<p>Portmere's sea wall will be raised by <strong>1.2 metres</strong> before winter, "
    'the <a href="https://council.example/plans?a=1&amp;b=2">council confirmed</a> today.</p>'
    "<h2>What changes</h2><ul><li>New flood gates on Quay Street</li>"
    "<li>A warning siren tested monthly</li></ul>"
    '<blockquote><p>"We are buying the town twenty years," said the harbour master.</p>'
    "</blockquote>"
    '<p>Read the <a href="https://harbourlight.example/report.pdf">full report</a>.</p>'
)


def organisation(session: Session, settings: Settings, *, tracking: bool = True) -> Organisation:
    org = session.scalar(select(Organisation).limit(1))
    if org is None:
        org = Organisation(
            name=settings.org_name,
            tagline=settings.org_tagline,
            postal_address=settings.org_postal_address,
            timezone=settings.org_timezone,
            press_email=settings.press_email,
            website_url=settings.public_base_url,
        )
        session.add(org)
    org.is_tracking_enabled = tracking
    session.flush()
    return org


def kind(session: Session, name: str = "Press release") -> ReleaseKind:
    found = session.scalar(select(ReleaseKind).where(ReleaseKind.name == name))
    if found is None:
        found = ReleaseKind(name=name, slug=f"{name.lower().replace(' ', '-')}-{next(_n)}")
        session.add(found)
        session.flush()
    return found


def beat(session: Session, name: str) -> Beat:
    b = Beat(name=name, slug=f"{name.lower().replace(' ', '-')}-{next(_n)}")
    session.add(b)
    session.flush()
    return b


def release(
    session: Session,
    *,
    title: str = "Sea wall to be raised before winter",
    summary: str = "The council approved a £4m plan to protect 2,000 homes from storm surges.",
    body_html: str = BODY_HTML,
    embargo_until: dt.datetime | None = None,
    photo: bool = True,
    contacts: bool = True,
    attachments: bool = True,
) -> Release:
    n = next(_n)
    r = Release(
        kind=kind(session),
        title=title,
        slug=f"release-{n}-{secrets.token_hex(3)}",
        summary=summary,
        body_markdown="",
        body_html=body_html,
        embargo_until=embargo_until,
        preview_token=secrets.token_urlsafe(16),
        published_at=dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC),
    )
    if photo:
        r.photo_key = f"photo-{n}"
        r.photo_alt = "The old sea wall at high tide"
        r.photo_credit = "Jo Marsh"
        r.photo_caption = "Waves over the wall in October."
    if contacts:
        r.contacts = [
            PressContact(
                name="Sam Rivers",
                title="Head of press",
                email="sam@harbourlight.example",
                phone="+44 20 7946 0000",
            )
        ]
    session.add(r)
    session.flush()
    if attachments:
        session.add(
            Attachment(
                release_id=r.id,
                filename="sea-wall-plan.pdf",
                stored_name=f"{secrets.token_hex(8)}.pdf",
                content_type="application/pdf",
                size=482_000,
            )
        )
        session.flush()
        session.refresh(r)
    return r


def journalist(
    session: Session,
    *,
    email: str | None = None,
    name: str = "Jane Doe",
    is_tracking_allowed: bool = True,
) -> Journalist:
    n = next(_n)
    address = email or f"journalist{n}-{secrets.token_hex(3)}@example.org"
    j = Journalist(
        email=address,
        email_normalized=address.lower(),
        name=name,
        is_tracking_allowed=is_tracking_allowed,
    )
    session.add(j)
    session.flush()
    return j


def send_with_delivery(
    session: Session,
    release_: Release,
    journalist_: Journalist,
    *,
    status: DeliveryStatus = DeliveryStatus.QUEUED,
    matched_beats: str = "Climate",
) -> Delivery:
    send = session.scalar(select(Send).where(Send.release_id == release_.id))
    if send is None:
        send = Send(release_id=release_.id, status=SendStatus.RUNNING)
        session.add(send)
        session.flush()
    d = Delivery(
        send_id=send.id,
        release_id=release_.id,
        journalist_id=journalist_.id,
        email=journalist_.email,
        recipient_domain=journalist_.email.rpartition("@")[2],
        status=status,
        matched_beats=matched_beats,
        verp_token=secrets.token_urlsafe(16),
    )
    session.add(d)
    session.flush()
    return d


def audience(
    session: Session, release_: Release, *, count: int = 3, digest: int = 0
) -> list[Journalist]:
    """Confirmed subscribers of a new beat the release is filed under (some in digest mode)."""
    from distributor.audience.models import DeliveryMode, Subscription, SubscriptionStatus

    b = beat(session, f"Coastal towns {next(_n)}")
    release_.beats = [*release_.beats, b]
    people: list[Journalist] = []
    for i in range(count + digest):
        j = journalist(session, name=f"Reporter {i}")
        if i >= count:
            j.delivery_mode = DeliveryMode.DAILY_DIGEST
        session.add(
            Subscription(journalist_id=j.id, beat_id=b.id, status=SubscriptionStatus.CONFIRMED)
        )
        people.append(j)
    session.flush()
    return people
