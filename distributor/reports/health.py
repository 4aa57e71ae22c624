"""The organisation's sending health: daily volume, bounce and complaint rates, warnings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from distributor.bounces.models import Bounce, BounceKind, Complaint
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus

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


def _day_expr(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def dashboard(session: Session, *, days: int = 30, now: dt.datetime | None = None) -> Dashboard:
    """Daily volume, bounce and complaint rates for the last ``days`` days, with warnings.

    Bounces and complaints are counted on the day their message was sent, so a day's rate
    compares like with like.
    """
    now = now or utcnow()
    first_day = (now - dt.timedelta(days=days - 1)).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    day = _day_expr(session, Delivery.sent_at).label("day")
    hard_report = exists(
        select(literal(1)).where(Bounce.delivery_id == Delivery.id, Bounce.kind == BounceKind.HARD)
    )
    sync_hard = and_(
        Delivery.status == DeliveryStatus.FAILED,
        Delivery.smtp_code >= 500,
        Delivery.is_policy_rejection.is_(False),
    )
    complaint_count = (
        select(func.count()).where(Complaint.delivery_id == Delivery.id).scalar_subquery()
    )
    # A delivery "went out" when it has sent_at (accepted) or was refused permanently.
    went_out = or_(Delivery.sent_at.is_not(None), sync_hard)
    when = func.coalesce(Delivery.sent_at, Delivery.updated_at)
    day = _day_expr(session, when).label("day")
    rows = session.execute(
        select(
            day,
            func.count(),
            func.sum(case((or_(hard_report, sync_hard), 1), else_=0)),
            func.sum(complaint_count),
        )
        .where(went_out, when >= since)
        .group_by(day)
    ).all()
    by_day = {str(r[0]): r for r in rows}
    out: list[DayRow] = []
    for i in range(days):
        d = first_day + dt.timedelta(days=i)
        r = by_day.get(d.isoformat())
        out.append(DayRow(d, int(r[1]), int(r[2] or 0), int(r[3] or 0)) if r else DayRow(d))
    sent = sum(d.sent for d in out)
    board = Dashboard(
        days=out,
        sent=sent,
        bounced=sum(d.bounced for d in out),
        complaints=sum(d.complaints for d in out),
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
