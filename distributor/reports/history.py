"""A journalist's engagement history: every release sent to them and what happened to it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.bounces.models import Bounce, Complaint
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.errors import NotFound
from distributor.releases.models import Release
from distributor.tracking.models import EventKind, TrackingEvent


@dataclass
class JournalistDeliveryRow:
    delivery_id: int
    release_id: int
    title: str
    status: str
    sent_at: dt.datetime | None
    human_opens: int
    machine_opens: int
    human_clicks: int
    bot_clicks: int
    first_human_open_at: dt.datetime | None
    bounced: str
    complained: bool


@dataclass
class JournalistHistory:
    journalist: Journalist
    rows: list[JournalistDeliveryRow]

    @property
    def delivered(self) -> int:
        return sum(1 for r in self.rows if r.status == DeliveryStatus.SENT.value)

    @property
    def opened(self) -> int:
        return sum(1 for r in self.rows if r.human_opens or r.human_clicks)

    @property
    def clicked(self) -> int:
        return sum(1 for r in self.rows if r.human_clicks)


def journalist_history(session: Session, journalist_id: int) -> JournalistHistory:
    """Every release sent to one journalist with what they (and machines) did with it."""
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        raise NotFound("No such journalist.")
    human = TrackingEvent.is_machine.is_(False)
    is_open = TrackingEvent.kind == EventKind.OPEN
    ev = (
        select(
            TrackingEvent.delivery_id.label("delivery_id"),
            func.sum(case((and_(is_open, human), 1), else_=0)).label("ho"),
            func.sum(case((and_(is_open, ~human), 1), else_=0)).label("mo"),
            func.sum(case((and_(~is_open, human), 1), else_=0)).label("hc"),
            func.sum(case((and_(~is_open, ~human), 1), else_=0)).label("bc"),
            func.min(case((human, TrackingEvent.occurred_at), else_=None)).label("first"),
        )
        .where(TrackingEvent.journalist_id == journalist_id)
        .group_by(TrackingEvent.delivery_id)
        .subquery()
    )
    bo = (
        select(Bounce.delivery_id.label("delivery_id"), func.min(Bounce.kind).label("kind"))
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .where(Delivery.journalist_id == journalist_id)
        .group_by(Bounce.delivery_id)
        .subquery()
    )
    co = (
        select(Complaint.delivery_id.label("delivery_id"), func.count().label("n"))
        .join(Delivery, Delivery.id == Complaint.delivery_id)
        .where(Delivery.journalist_id == journalist_id)
        .group_by(Complaint.delivery_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.release_id,
            Release.title,
            Delivery.status,
            Delivery.sent_at,
            func.coalesce(ev.c.ho, 0),
            func.coalesce(ev.c.mo, 0),
            func.coalesce(ev.c.hc, 0),
            func.coalesce(ev.c.bc, 0),
            ev.c.first,
            bo.c.kind,
            func.coalesce(co.c.n, 0),
        )
        .join(Release, Release.id == Delivery.release_id)
        .outerjoin(ev, ev.c.delivery_id == Delivery.id)
        .outerjoin(bo, bo.c.delivery_id == Delivery.id)
        .outerjoin(co, co.c.delivery_id == Delivery.id)
        .where(Delivery.journalist_id == journalist_id)
        .order_by(func.coalesce(Delivery.sent_at, Delivery.created_at).desc())
    ).all()
    return JournalistHistory(
        journalist=journalist,
        rows=[
            JournalistDeliveryRow(
                delivery_id=r[0],
                release_id=r[1],
                title=r[2],
                status=str(getattr(r[3], "value", r[3])),
                sent_at=r[4],
                human_opens=int(r[5]),
                machine_opens=int(r[6]),
                human_clicks=int(r[7]),
                bot_clicks=int(r[8]),
                first_human_open_at=_as_utc(r[9]),
                bounced=str(getattr(r[10], "value", r[10]) or ""),
                complained=bool(r[11]),
            )
            for r in rows
        ],
    )


def _as_utc(value: Any) -> dt.datetime | None:
    # MIN() over a CASE loses the column type on SQLite: parse what comes back.
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return None
