"""The organisation's sending health: daily volume, bounce and complaint rates, warnings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from distributor.bounces.models import Bounce, Complaint
from distributor.db import utcnow
from distributor.delivery.models import Delivery
from distributor.reports import definitions as d

# Mailbox providers' limits (Gmail/Yahoo bulk-sender rules; common ESP account reviews).
COMPLAINT_WARN, COMPLAINT_LIMIT = 0.001, 0.003
BOUNCE_WARN, BOUNCE_LIMIT = 0.05, 0.10


@dataclass
class DayRow:
    day: dt.date
    sent: int = 0
    bounced: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


@dataclass
class Dashboard:
    days: list[DayRow]
    sent: int
    bounced: int
    complaints: int
    warnings: list[tuple[str, str]]  # (level "warn"|"bad", message)

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


def dashboard(session: Session, *, days: int = 30, now: dt.datetime | None = None) -> Dashboard:
    """Daily volume, hard-bounce and complaint rates for the last ``days`` days, with warnings.

    Bounces and complaints are counted on the day their message went out, so a day's rate
    compares like with like. Only the sends that can reach the window are read, through the
    deliveries' (send_id, status) index, so the send path pays for no index of its own.
    """
    now = now or utcnow()
    d.without_jit(session)
    first_day = (now - dt.timedelta(days=days - 1)).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    when = d.went_out_at()
    in_window = and_(Delivery.send_id.in_(d.sends_reaching(since)), d.went_out(), when >= since)
    hard_ids = [i for i, kind in d.session_failures(session, in_window).items() if kind == "hard"]
    hard_reports = (
        select(Bounce.delivery_id.label("delivery_id"))
        .where(d.hard_bounce_reports(), Bounce.received_at >= since)
        .group_by(Bounce.delivery_id)
        .subquery("hard")
    )
    complained = (
        select(Complaint.delivery_id.label("delivery_id"))
        .where(d.is_complaint(), Complaint.received_at >= since)
        .group_by(Complaint.delivery_id)
        .subquery("complained")
    )
    is_hard = or_(hard_reports.c.delivery_id.is_not(None), Delivery.id.in_(hard_ids))
    day = d.day_of(session, when).label("day")
    rows = session.execute(
        select(
            day,
            func.count(),
            func.sum(case((is_hard, 1), else_=0)),
            func.sum(case((complained.c.delivery_id.is_not(None), 1), else_=0)),
        )
        .select_from(Delivery)
        .outerjoin(hard_reports, hard_reports.c.delivery_id == Delivery.id)
        .outerjoin(complained, complained.c.delivery_id == Delivery.id)
        .where(in_window)
        .group_by(day)
    ).all()
    by_day = {str(r[0]): r for r in rows}
    out: list[DayRow] = []
    for i in range(days):
        day_ = first_day + dt.timedelta(days=i)
        r = by_day.get(day_.isoformat())
        out.append(DayRow(day_, int(r[1]), int(r[2] or 0), int(r[3] or 0)) if r else DayRow(day_))
    sent = sum(row.sent for row in out)
    board = Dashboard(
        days=out,
        sent=sent,
        bounced=sum(row.bounced for row in out),
        complaints=sum(row.complaints for row in out),
        warnings=[],
    )
    board.warnings = _warnings(board)
    return board


def _warnings(board: Dashboard) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not board.sent:
        return found
    cr, br = board.complaint_rate, board.bounce_rate
    if cr >= COMPLAINT_LIMIT:
        found.append(
            (
                "bad",
                f"Complaint rate {cr:.2%} is at or above 0.3%: Gmail and Yahoo "
                "may reject or spam-folder our mail. Stop sending to cold lists.",
            )
        )
    elif cr >= COMPLAINT_WARN:
        found.append(
            (
                "warn",
                f"Complaint rate {cr:.2%} is above the 0.1% that mailbox providers "
                "ask bulk senders to stay under.",
            )
        )
    if br >= BOUNCE_LIMIT:
        found.append(
            (
                "bad",
                f"Bounce rate {br:.2%} is at or above 10%: providers treat this as "
                "list abuse. Clean the audience before the next send.",
            )
        )
    elif br >= BOUNCE_WARN:
        found.append(
            ("warn", f"Bounce rate {br:.2%} is above 5%: check recent imports for stale addresses.")
        )
    return found
