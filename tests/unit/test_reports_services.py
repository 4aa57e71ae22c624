"""Report figures, computed in SQL, say what happened to a release and to the organisation."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Subscription, SubscriptionStatus
from distributor.bounces.models import Bounce, BounceKind, Classification, Complaint, InboundMessage
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.reports import health, services
from distributor.reports.history import journalist_history
from distributor.reports.sample import APPLE_MPP_UA, HUMAN_UA, SCANNER_UA, seed_sent_release
from distributor.tracking.buffer import RawEvent
from distributor.tracking.models import TrackedLink
from distributor.tracking.services import classify_pending, store_events


def _controlled_release(session: Session) -> tuple[int, list[Delivery], list[int]]:
    """A release of 5 deliveries with known outcomes (the sample's random events removed)."""
    release = seed_sent_release(session, recipients=5, prefix="rep", seed=99)
    deliveries = list(
        session.scalars(
            select(Delivery).where(Delivery.release_id == release.id).order_by(Delivery.id)
        )
    )
    from distributor.tracking.models import TrackingEvent

    for model in (TrackingEvent, Bounce, Complaint):
        for row in session.scalars(
            select(model).where(model.delivery_id.in_([d.id for d in deliveries]))
        ):
            session.delete(row)
    sent_at = utcnow() - dt.timedelta(hours=10)
    statuses = [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.DEFERRED,
    ]
    for d, status in zip(deliveries, statuses, strict=True):
        d.status = status
        d.sent_at = sent_at if status == DeliveryStatus.SENT else None
        d.first_attempt_at = sent_at
        d.smtp_code = 550 if status == DeliveryStatus.FAILED else 250
        d.smtp_response = "5.1.1 User unknown" if status == DeliveryStatus.FAILED else "2.0.0 Ok"
        d.is_policy_rejection = False
    session.flush()
    links = list(
        session.scalars(
            select(TrackedLink.id)
            .where(TrackedLink.release_id == release.id)
            .order_by(TrackedLink.position)
        )
    )
    return release.id, deliveries, links


def test_release_report_counts_people_and_machines_apart(session: Session) -> None:
    release_id, (a, b, c, _failed, _deferred), links = _controlled_release(session)
    sent_at = a.sent_at
    assert sent_at is not None
    later = sent_at + dt.timedelta(hours=2)

    def ev(kind: str, d: Delivery, at: dt.datetime, ua: str, link: int | None = None) -> RawEvent:
        return RawEvent(
            uid=uuid.uuid4().hex,
            kind=kind,
            token=d.verp_token,
            link_id=link,
            occurred_at=at.timestamp(),
            method="GET",
            user_agent=ua,
        )

    store_events(
        session,
        [
            ev("open", a, later, HUMAN_UA),  # a: a person opens twice and clicks once
            ev("open", a, later + dt.timedelta(hours=1), HUMAN_UA),
            ev("click", a, later + dt.timedelta(minutes=1), HUMAN_UA, links[0]),
            ev("open", b, sent_at + dt.timedelta(minutes=1), APPLE_MPP_UA),  # b: Apple only
            # c: a scanner clicks everything at once, then the person clicks (no pixel shown)
            *[ev("click", c, later, SCANNER_UA, link) for link in links],
            ev("click", c, later + dt.timedelta(hours=3), HUMAN_UA, links[1]),
        ],
    )
    classify_pending(session)
    message = InboundMessage(source="smtp", dedupe_key="t-1", classification=Classification.BOUNCE)
    session.add(message)
    session.flush()
    session.add(
        Bounce(inbound_message_id=message.id, delivery_id=b.id, email=b.email, kind=BounceKind.SOFT)
    )
    session.add(Complaint(inbound_message_id=message.id, delivery_id=a.id, email=a.email))
    sub = session.scalar(select(Subscription).where(Subscription.journalist_id == a.journalist_id))
    assert sub is not None
    sub.status = SubscriptionStatus.UNSUBSCRIBED
    sub.unsubscribed_at = later + dt.timedelta(days=1)
    session.flush()

    report = services.release_report(session, release_id)
    t = report.totals
    assert (t["recipients"], t["sent"], t["failed"], t["deferred"]) == (5, 3, 1, 1)
    assert (t["bounced_hard"], t["bounced_soft"]) == (1, 1)  # the 550 at RCPT; b's soft report
    assert t["human_openers"] == 2  # a opened; c's human click implies an open
    assert t["machine_only_openers"] == 1  # b
    assert t["human_clickers"] == 2
    assert (t["complaints"], t["unsubscribes"]) == (1, 1)
    assert report.events == {
        "human_opens": 2,
        "machine_opens": 1,
        "human_clicks": 2,
        "bot_clicks": len(links),
    }
    by_link = {row.link_id: row for row in report.links}
    assert (by_link[links[0]].human_clicks, by_link[links[0]].bot_clicks) == (1, 1)
    assert by_link[links[1]].human_clickers == 1
    assert sum(b.human_opens for b in report.timeline) == 2
    assert sum(b.bot_clicks for b in report.timeline) == len(links)
    assert sum(v["recipients"] for _, v in report.by_outlet) == 5
    assert {name for name, _ in report.by_beat} <= {"Climate", "Coastal communities", "Science"}

    history = journalist_history(session, a.journalist_id or 0)
    (row,) = history.rows
    assert (row.human_opens, row.human_clicks, row.complained) == (2, 1, True)
    assert row.first_human_open_at is not None


def test_dashboard_warns_when_rates_cross_provider_thresholds(session: Session) -> None:
    _release_id, _deliveries, _ = _controlled_release(session)
    board = health.dashboard(session)
    assert len(board.days) == 30
    # 4 went out (3 accepted, 1 refused with 550): 1 bounce = 25%, above the 10% limit.
    assert (board.sent, board.bounced) == (4, 1)
    assert sum(day.sent for day in board.days[-2:]) == 4
    levels = [level for level, _ in board.warnings]
    assert "bad" in levels
    assert board.bounce_rate >= health.BOUNCE_LIMIT


def test_recent_releases_lists_sent_releases_with_figures(session: Session) -> None:
    release_id, _, _ = _controlled_release(session)
    rows = services.recent_releases(session, limit=500)
    mine = next(r for r in rows if r.release_id == release_id)
    assert mine.figures["recipients"] == 5
