"""The demo's reports tell the truth: dated with their sends, readable, and left alone."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.bounces import services as bounce_services
from distributor.bounces.models import Bounce, Classification, Complaint, InboundMessage
from distributor.bounces.parsing import parse_message
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.releases.models import Release
from distributor.reports import health
from distributor.reports.sample import seed_reports_demo
from distributor.settings import Settings
from distributor.tracking.models import TrackingEvent


def _went_out(d: Delivery) -> dt.datetime:
    at = d.sent_at or d.first_attempt_at
    assert at is not None
    return at


def test_demo_reports_come_after_their_sends_and_are_never_reparsed(
    session: Session, settings: Settings
) -> None:
    now = utcnow()
    assert seed_reports_demo(session, settings)
    demo = select(Release.id).where(Release.slug.like("demo-report-%"))
    deliveries = {
        d.id: d for d in session.scalars(select(Delivery).where(Delivery.release_id.in_(demo)))
    }
    assert deliveries
    for d in deliveries.values():
        assert d.created_at <= _went_out(d) <= now, "a delivery dated at seeding time"
        assert d.status is not DeliveryStatus.DEFERRED  # the sends finished days ago

    events = session.scalars(
        select(TrackingEvent).where(TrackingEvent.delivery_id.in_(list(deliveries)))
    ).all()
    bounces = session.scalars(select(Bounce).where(Bounce.delivery_id.in_(list(deliveries)))).all()
    complaints = session.scalars(
        select(Complaint).where(Complaint.delivery_id.in_(list(deliveries)))
    ).all()
    assert events and bounces and complaints
    for event in events:
        assert _went_out(deliveries[event.delivery_id]) <= event.occurred_at <= now
    reports: list[Bounce | Complaint] = [*bounces, *complaints]
    for row in reports:
        assert row.delivery_id is not None and row.matched_by == "verp"
        assert _went_out(deliveries[row.delivery_id]) <= row.received_at <= now

    # Each report is a real message the parser reads to the same result, and it is processed.
    for bounce in bounces:
        inbound = bounce.inbound_message
        assert inbound.processed_at is not None and inbound.raw
        parsed = parse_message(
            inbound.raw,
            envelope_to=[inbound.envelope_to],
            bounce_domain=settings.bounce_domain,
        )
        assert parsed.classification is Classification.BOUNCE
        (failed,) = parsed.recipients
        assert failed.address == bounce.email
        assert failed.kind is bounce.kind
    for complaint in complaints:
        inbound = complaint.inbound_message
        assert inbound.processed_at is not None and inbound.raw
        parsed = parse_message(
            inbound.raw, envelope_to=[inbound.envelope_to], bounce_domain=settings.bounce_domain
        )
        assert parsed.classification is Classification.COMPLAINT

    # The pending sweep finds nothing of the demo to rewrite, however late it runs.
    demo_inbound = {b.inbound_message_id for b in bounces} | {
        c.inbound_message_id for c in complaints
    }
    bounce_services.process_pending(
        session, settings, now=now + dt.timedelta(hours=1), older_than=dt.timedelta(0)
    )
    for inbound in session.scalars(
        select(InboundMessage).where(InboundMessage.id.in_(demo_inbound))
    ):
        assert inbound.classification in (Classification.BOUNCE, Classification.COMPLAINT)

    # No hard bounce is counted on a day no demo message went out (the false spike).
    board = health.dashboard(session, now=now)
    sent_days = {_went_out(d).date() for d in deliveries.values()}
    for day in board.days:
        if day.day not in sent_days:
            assert (day.bounced, day.complaints) == (0, 0), day
