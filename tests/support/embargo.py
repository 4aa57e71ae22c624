"""An embargoed release sent to a small audience, for the embargo-room tests."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from sqlalchemy.orm import Session

from distributor.audience.models import Beat, Journalist
from distributor.db import utcnow
from distributor.delivery.models import Delivery, Send, SendStatus
from distributor.delivery.recipients import freeze_recipients
from distributor.embargo import handlers, services
from distributor.embargo.models import Standing
from distributor.releases.media import add_attachment, set_photo
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.storage import storage_for
from tests.support import delivery_factories as f
from tests.support.delivery_seed import approved_release, person, subscribe
from tests.support.releases import image_bytes

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
TERMS_SUMMARY = "Nothing may be published before the lift time; sharing the link is a breach."
TERMS_BODY = "You may prepare stories before the lift.\n\nYou may not publish or share them."


@dataclass
class World:
    release: Release
    beat: Beat
    alice: Journalist  # allowed
    bob: Journalist  # on probation: skipped
    carol: Journalist  # allowed
    send: Send


def embargoed_world(
    session: Session,
    settings: Settings,
    *,
    requires_terms: bool = True,
    sends_lift_note: bool = False,
    freeze: bool = True,
) -> World:
    """Three journalists on one beat; Bob is on probation; the release lifts tomorrow."""
    handlers.connect()
    now = utcnow()
    f.organisation(session, settings)
    climate = f.beat(session, "Climate")
    alice = person(session, "alice@a.example")
    bob = person(session, "bob@b.example")
    carol = person(session, "carol@c.example")
    subscribe(session, alice, [climate])
    subscribe(session, bob, [climate])
    subscribe(session, carol, [climate])
    services.set_standing(
        session,
        bob.id,
        standing=Standing.PROBATION,
        probation_until=now + dt.timedelta(days=30),
        reason="Broke the October embargo",
        by=None,
        now=now,
    )
    release = approved_release(session, beats=[climate])
    release.embargo_until = now + dt.timedelta(days=1)
    release.published_at = None
    release.body_markdown = "The sea wall will be raised by 1.2 metres."
    set_photo(session, release, io.BytesIO(image_bytes(1400, 900)), storage_for(settings))
    add_attachment(session, release, io.BytesIO(PDF), "plan.pdf", storage_for(settings))
    if services.current_terms(session) is None:
        services.publish_terms(session, summary=TERMS_SUMMARY, body=TERMS_BODY, by=None, now=now)
    services.set_options(
        session,
        release.id,
        requires_terms=requires_terms,
        sends_lift_note=sends_lift_note,
        now=now,
    )
    send = Send(release_id=release.id, status=SendStatus.RUNNING, started_at=now, created_at=now)
    session.add(send)
    session.flush()
    if freeze:
        freeze_recipients(session, send_id=send.id, release_id=release.id, now=now)
    return World(release, climate, alice, bob, carol, send)


def another_release(session: Session, world: World) -> Release:
    """A second embargoed release, requiring the terms, sent to the same beat."""
    now = utcnow()
    release = approved_release(session, beats=[world.beat])
    release.embargo_until = now + dt.timedelta(days=2)
    release.published_at = None
    services.set_options(session, release.id, requires_terms=True, sends_lift_note=False, now=now)
    send = Send(release_id=release.id, status=SendStatus.RUNNING, started_at=now, created_at=now)
    session.add(send)
    session.flush()
    freeze_recipients(session, send_id=send.id, release_id=release.id, now=now)
    return release


def delivery_of(session: Session, release: Release, journalist: Journalist) -> Delivery | None:
    from sqlalchemy import select

    return session.scalar(
        select(Delivery).where(
            Delivery.release_id == release.id, Delivery.journalist_id == journalist.id
        )
    )
