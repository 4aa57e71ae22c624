"""Release reports. Every figure is aggregated in SQL; Python only shapes the rows.

Definitions (the page says them too):
- *Human openers*: deliveries with a human open or a human click (a click implies an open).
- *Machine-only openers*: deliveries whose only opens came from machines.
- *Bounced hard*: a hard bounce report, or a permanent (5xx) rejection during the SMTP session
  that was not a policy (5.7.x) rejection. *Soft*: a soft bounce report.
- *Unsubscribes*: recipients who ended a subscription after this release reached them and
  before any later release did (the last mail before the unsubscribe gets it).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from distributor.audience.models import Journalist, Outlet, Subscription
from distributor.bounces.models import Bounce, BounceKind, Complaint
from distributor.delivery.models import Delivery, DeliveryStatus, Send
from distributor.errors import NotFound
from distributor.releases.models import Release
from distributor.tracking.models import EventKind, TrackedLink, TrackingEvent

METRICS = (
    "recipients",
    "sent",
    "in_progress",
    "deferred",
    "failed",
    "unknown",
    "cancelled",
    "bounced_hard",
    "bounced_soft",
    "human_openers",
    "machine_only_openers",
    "human_clickers",
    "bot_only_clickers",
    "complaints",
    "unsubscribes",
)

METRIC_LABELS = {
    "recipients": "Recipients",
    "sent": "Sent",
    "in_progress": "Queued or sending",
    "deferred": "Deferred",
    "failed": "Failed",
    "unknown": "Unknown outcome",
    "cancelled": "Cancelled",
    "bounced_hard": "Bounced (hard)",
    "bounced_soft": "Bounced (soft)",
    "human_openers": "Opened by a person",
    "machine_only_openers": "Opened by machines only",
    "human_clickers": "Clicked (people)",
    "bot_only_clickers": "Clicked by bots only",
    "complaints": "Complaints",
    "unsubscribes": "Unsubscribes",
}


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.max(case((condition, 1), else_=0))


def _per_delivery(release_ids: Select[Any] | list[int]) -> Any:
    """One row per delivery with 0/1 flags for every outcome: the base of every breakdown."""
    human_open = and_(TrackingEvent.is_machine.is_(False))
    ev = (
        select(
            TrackingEvent.delivery_id.label("delivery_id"),
            _flag(human_open).label("human_open"),
            _flag(
                and_(TrackingEvent.kind == EventKind.OPEN, TrackingEvent.is_machine.is_(True))
            ).label("machine_open"),
            _flag(
                and_(TrackingEvent.kind == EventKind.CLICK, TrackingEvent.is_machine.is_(False))
            ).label("human_click"),
            _flag(
                and_(TrackingEvent.kind == EventKind.CLICK, TrackingEvent.is_machine.is_(True))
            ).label("bot_click"),
        )
        .where(TrackingEvent.release_id.in_(release_ids))
        .group_by(TrackingEvent.delivery_id)
        .subquery("ev")
    )
    bo = (
        select(
            Bounce.delivery_id.label("delivery_id"),
            _flag(Bounce.kind == BounceKind.HARD).label("hard"),
            _flag(Bounce.kind == BounceKind.SOFT).label("soft"),
        )
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .where(Delivery.release_id.in_(release_ids))
        .group_by(Bounce.delivery_id)
        .subquery("bo")
    )
    co = (
        select(Complaint.delivery_id.label("delivery_id"), func.count().label("n"))
        .join(Delivery, Delivery.id == Complaint.delivery_id)
        .where(Delivery.release_id.in_(release_ids))
        .group_by(Complaint.delivery_id)
        .subquery("co")
    )
    later = aliased(Delivery)
    unsubscribed = exists(
        select(literal(1)).where(
            Subscription.journalist_id == Delivery.journalist_id,
            Subscription.unsubscribed_at.is_not(None),
            Subscription.unsubscribed_at >= Delivery.sent_at,
            ~exists(
                select(literal(1)).where(
                    later.journalist_id == Delivery.journalist_id,
                    later.sent_at > Delivery.sent_at,
                    later.sent_at <= Subscription.unsubscribed_at,
                )
            ),
        )
    )
    sync_hard = and_(
        Delivery.status == DeliveryStatus.FAILED,
        Delivery.smtp_code >= 500,
        Delivery.is_policy_rejection.is_(False),
    )
    return (
        select(
            Delivery.id.label("delivery_id"),
            Delivery.release_id.label("release_id"),
            Delivery.status.label("status"),
            Delivery.matched_beats.label("beats"),
            func.coalesce(Outlet.name, "").label("outlet"),
            func.coalesce(ev.c.human_open, 0).label("human_open"),
            case(
                (
                    and_(
                        func.coalesce(ev.c.machine_open, 0) == 1,
                        func.coalesce(ev.c.human_open, 0) == 0,
                    ),
                    1,
                ),
                else_=0,
            ).label("machine_only_open"),
            func.coalesce(ev.c.human_click, 0).label("human_click"),
            case(
                (
                    and_(
                        func.coalesce(ev.c.bot_click, 0) == 1,
                        func.coalesce(ev.c.human_click, 0) == 0,
                    ),
                    1,
                ),
                else_=0,
            ).label("bot_only_click"),
            case((or_(func.coalesce(bo.c.hard, 0) == 1, sync_hard), 1), else_=0).label("hard"),
            case(
                (and_(func.coalesce(bo.c.soft, 0) == 1, func.coalesce(bo.c.hard, 0) == 0), 1),
                else_=0,
            ).label("soft"),
            func.coalesce(co.c.n, 0).label("complaints"),
            case((and_(Delivery.sent_at.is_not(None), unsubscribed), 1), else_=0).label("unsub"),
        )
        .select_from(Delivery)
        .outerjoin(Journalist, Journalist.id == Delivery.journalist_id)
        .outerjoin(Outlet, Outlet.id == Journalist.outlet_id)
        .outerjoin(ev, ev.c.delivery_id == Delivery.id)
        .outerjoin(bo, bo.c.delivery_id == Delivery.id)
        .outerjoin(co, co.c.delivery_id == Delivery.id)
        .where(Delivery.release_id.in_(release_ids))
        .subquery("pd")
    )


def _sums(pd: Any) -> list[ColumnElement[Any]]:
    def status_is(*statuses: DeliveryStatus) -> ColumnElement[int]:
        return func.sum(case((pd.c.status.in_([s.value for s in statuses]), 1), else_=0))

    return [
        func.count().label("recipients"),
        status_is(DeliveryStatus.SENT).label("sent"),
        status_is(DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DIGEST).label(
            "in_progress"
        ),
        status_is(DeliveryStatus.DEFERRED).label("deferred"),
        status_is(DeliveryStatus.FAILED).label("failed"),
        status_is(DeliveryStatus.IN_DOUBT).label("unknown"),
        status_is(DeliveryStatus.CANCELLED).label("cancelled"),
        func.sum(pd.c.hard).label("bounced_hard"),
        func.sum(pd.c.soft).label("bounced_soft"),
        func.sum(pd.c.human_open).label("human_openers"),
        func.sum(pd.c.machine_only_open).label("machine_only_openers"),
        func.sum(pd.c.human_click).label("human_clickers"),
        func.sum(pd.c.bot_only_click).label("bot_only_clickers"),
        func.sum(pd.c.complaints).label("complaints"),
        func.sum(pd.c.unsub).label("unsubscribes"),
    ]


def _row_dict(row: Any) -> dict[str, int]:
    return {name: int(getattr(row, name) or 0) for name in METRICS}


@dataclass
class LinkRow:
    link_id: int
    position: int
    url: str
    human_clicks: int
    human_clickers: int
    bot_clicks: int


@dataclass
class TimelineBucket:
    label: str
    starts_at: dt.datetime
    human_opens: int = 0
    machine_opens: int = 0
    human_clicks: int = 0
    bot_clicks: int = 0


@dataclass
class ReleaseReport:
    release: Release
    send: Send | None
    totals: dict[str, int]
    events: dict[str, int]
    by_beat: list[tuple[str, dict[str, int]]]
    by_outlet: list[tuple[str, dict[str, int]]]
    links: list[LinkRow]
    timeline: list[TimelineBucket]
    bucket: str
    machine_reasons: list[tuple[str, int]] = field(default_factory=list)

    def rate(self, metric: str, base: str = "sent") -> float:
        denominator = self.totals.get(base, 0)
        return self.totals.get(metric, 0) / denominator if denominator else 0.0


def _ids(release_id: int) -> list[int]:
    return [release_id]


def release_totals(session: Session, release_id: int) -> dict[str, int]:
    pd = _per_delivery(_ids(release_id))
    return _row_dict(session.execute(select(*_sums(pd))).one())


def release_report(session: Session, release_id: int) -> ReleaseReport:
    """Everything the release report page shows, in a handful of aggregate queries."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound("No such release.")
    send = session.scalar(select(Send).where(Send.release_id == release_id))
    pd = _per_delivery(_ids(release_id))
    totals = _row_dict(session.execute(select(*_sums(pd))).one())

    by_beat: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for row in session.execute(select(pd.c.beats, *_sums(pd)).group_by(pd.c.beats)):
        names = [n.strip() for n in (row.beats or "").split(",") if n.strip()] or ["(no beat)"]
        values = _row_dict(row)
        for name in names:  # one delivery may match several beats: it counts in each
            for key, value in values.items():
                by_beat[name][key] += value
    by_outlet = [
        (row.outlet or "(no outlet)", _row_dict(row))
        for row in session.execute(
            select(pd.c.outlet, *_sums(pd)).group_by(pd.c.outlet).order_by(pd.c.outlet)
        )
    ]

    kinds = session.execute(
        select(
            TrackingEvent.kind,
            TrackingEvent.is_machine,
            func.count(),
        )
        .where(TrackingEvent.release_id == release_id)
        .group_by(TrackingEvent.kind, TrackingEvent.is_machine)
    ).all()
    events = {"human_opens": 0, "machine_opens": 0, "human_clicks": 0, "bot_clicks": 0}
    for kind, is_machine, count in kinds:
        key = (
            ("machine_opens" if is_machine else "human_opens")
            if kind == EventKind.OPEN
            else ("bot_clicks" if is_machine else "human_clicks")
        )
        events[key] += int(count)
    reasons = session.execute(
        select(TrackingEvent.machine_reason, func.count())
        .where(TrackingEvent.release_id == release_id, TrackingEvent.is_machine.is_(True))
        .group_by(TrackingEvent.machine_reason)
        .order_by(func.count().desc())
    ).all()

    timeline, bucket = _timeline(session, release_id, send)
    return ReleaseReport(
        release=release,
        send=send,
        totals=totals,
        events=events,
        by_beat=sorted(by_beat.items()),
        by_outlet=by_outlet,
        links=link_rows(session, release_id),
        timeline=timeline,
        bucket=bucket,
        machine_reasons=[(str(r), int(n)) for r, n in reasons],
    )


def link_rows(session: Session, release_id: int) -> list[LinkRow]:
    """Clicks per registered link: human clicks, distinct human clickers, bot clicks."""
    human = and_(TrackingEvent.id.is_not(None), TrackingEvent.is_machine.is_(False))
    rows = session.execute(
        select(
            TrackedLink.id,
            TrackedLink.position,
            TrackedLink.url,
            func.sum(case((human, 1), else_=0)),
            func.count(func.distinct(case((human, TrackingEvent.delivery_id), else_=None))),
            func.sum(case((TrackingEvent.is_machine.is_(True), 1), else_=0)),
        )
        .outerjoin(
            TrackingEvent,
            and_(TrackingEvent.link_id == TrackedLink.id, TrackingEvent.kind == EventKind.CLICK),
        )
        .where(TrackedLink.release_id == release_id)
        .group_by(TrackedLink.id, TrackedLink.position, TrackedLink.url)
        .order_by(TrackedLink.position)
    ).all()
    return [
        LinkRow(int(i), int(p), str(u), int(h or 0), int(hc or 0), int(b or 0))
        for i, p, u, h, hc, b in rows
    ]


def _bucket_expr(session: Session, column: Any, unit: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(
            func.date_trunc(unit, func.timezone("UTC", column)), "YYYY-MM-DD HH24:00"
        )
    pattern = "%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d 00:00"
    return func.strftime(pattern, column)


def _timeline(
    session: Session, release_id: int, send: Send | None
) -> tuple[list[TimelineBucket], str]:
    bounds = session.execute(
        select(func.min(TrackingEvent.occurred_at), func.max(TrackingEvent.occurred_at)).where(
            TrackingEvent.release_id == release_id
        )
    ).one()
    start = (send.started_at if send and send.started_at else None) or bounds[0]
    end = bounds[1]
    if start is None or end is None:
        return [], "hour"
    start = min(start, bounds[0]) if bounds[0] else start
    unit = "hour" if end - start <= dt.timedelta(hours=72) else "day"
    step = dt.timedelta(hours=1) if unit == "hour" else dt.timedelta(days=1)
    first = (
        start.replace(minute=0, second=0, microsecond=0)
        if unit == "hour"
        else start.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    buckets: dict[str, TimelineBucket] = {}
    cursor = first
    while cursor <= end and len(buckets) < 400:
        key = cursor.strftime("%Y-%m-%d %H:00")
        label = cursor.strftime("%d %b %H:00") if unit == "hour" else cursor.strftime("%d %b")
        buckets[key] = TimelineBucket(label=label, starts_at=cursor)
        cursor += step
    b = _bucket_expr(session, TrackingEvent.occurred_at, unit).label("b")
    for key, kind, is_machine, count in session.execute(
        select(b, TrackingEvent.kind, TrackingEvent.is_machine, func.count())
        .where(TrackingEvent.release_id == release_id)
        .group_by(b, TrackingEvent.kind, TrackingEvent.is_machine)
    ):
        bucket = buckets.get(str(key))
        if bucket is None:
            continue
        if kind == EventKind.OPEN:
            if is_machine:
                bucket.machine_opens += int(count)
            else:
                bucket.human_opens += int(count)
        elif is_machine:
            bucket.bot_clicks += int(count)
        else:
            bucket.human_clicks += int(count)
    return list(buckets.values()), unit


# -- release list ----------------------------------------------------------------------------


@dataclass
class ReleaseSummary:
    release_id: int
    title: str
    started_at: dt.datetime | None
    figures: dict[str, int]


def recent_releases(session: Session, *, limit: int = 50, offset: int = 0) -> list[ReleaseSummary]:
    """Releases that have a send, newest first, with their headline figures."""
    rows = session.execute(
        select(Release.id, Release.title, Send.started_at, Send.created_at)
        .join(Send, Send.release_id == Release.id)
        .order_by(func.coalesce(Send.started_at, Send.created_at).desc(), Release.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    ids = [r.id for r in rows]
    figures: dict[int, dict[str, int]] = {}
    if ids:
        pd = _per_delivery(ids)
        for row in session.execute(select(pd.c.release_id, *_sums(pd)).group_by(pd.c.release_id)):
            figures[int(row.release_id)] = _row_dict(row)
    return [
        ReleaseSummary(r.id, r.title, r.started_at, figures.get(r.id, dict.fromkeys(METRICS, 0)))
        for r in rows
    ]
