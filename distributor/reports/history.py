"""A journalist's engagement history: every release sent to them and what happened to it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.delivery.models import Delivery
from distributor.errors import NotFound
from distributor.releases.models import Release
from distributor.reports import definitions as d
from distributor.tracking.models import TrackingEvent


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
    is_delivered: bool = False
    is_opened: bool = False  # by the journalist (definitions: human openers)
    is_clicked: bool = False


@dataclass
class JournalistHistory:
    journalist: Journalist
    rows: list[JournalistDeliveryRow]

    @property
    def delivered(self) -> int:
        return sum(1 for r in self.rows if r.is_delivered)

    @property
    def opened(self) -> int:
        return sum(1 for r in self.rows if r.is_opened)

    @property
    def clicked(self) -> int:
        return sum(1 for r in self.rows if r.is_clicked)


def journalist_history(session: Session, journalist_id: int) -> JournalistHistory:
    """Every release sent to one journalist with what they (and machines) did with it."""
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        raise NotFound("No such journalist.")
    scope = d.Scope.journalist(journalist_id)
    d.without_jit(session)
    ev = (
        select(
            TrackingEvent.delivery_id.label("delivery_id"),
            func.sum(case((d.is_open(human=True), 1), else_=0)).label("ho"),
            func.sum(case((d.is_open(human=False), 1), else_=0)).label("mo"),
            func.sum(case((d.is_click(human=True), 1), else_=0)).label("hc"),
            func.sum(case((d.is_click(human=False), 1), else_=0)).label("bc"),
            func.min(case((d.is_human_event(), TrackingEvent.occurred_at), else_=None)).label(
                "first"
            ),
        )
        .where(scope.events)
        .group_by(TrackingEvent.delivery_id)
        .subquery()
    )
    facts = d.delivery_facts(
        session,
        scope,
        d.status_value(Delivery.status).label("status"),
        Delivery.sent_at.label("sent_at"),
    )
    rows = session.execute(
        select(
            facts.c.delivery_id,
            facts.c.release_id,
            Release.title,
            facts.c.status,
            facts.c.sent_at,
            func.coalesce(ev.c.ho, 0),
            func.coalesce(ev.c.mo, 0),
            func.coalesce(ev.c.hc, 0),
            func.coalesce(ev.c.bc, 0),
            ev.c.first,
            facts.c.failure_rank,
            facts.c.complaints,
            facts.c.delivered,
            facts.c.human_openers,
            facts.c.human_clickers,
        )
        .join(Release, Release.id == facts.c.release_id)
        .outerjoin(ev, ev.c.delivery_id == facts.c.delivery_id)
        .order_by(facts.c.sent_at.desc().nulls_last(), facts.c.delivery_id.desc())
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
                bounced=d.failure_kind_name(r[10]),
                complained=bool(r[11]),
                is_delivered=bool(r[12]),
                is_opened=bool(r[13]),
                is_clicked=bool(r[14]),
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
