"""The organisation's sending health: daily volume, bounce and complaint rates, warnings."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from distributor.bounces.models import Bounce, Complaint
from distributor.db import utcnow
from distributor.delivery.models import Delivery, Send
from distributor.mail.outcomes import BounceKind
from distributor.reports import definitions as d
from distributor.reports import rollup
from distributor.reports.models import ReportSendDay

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
    compares like with like. Settled sends come from their per-day counts
    (``distributor.reports.rollup``); the others are read live through the deliveries'
    (send_id, status) index, so the send path pays for no index of its own. Bounce reports and
    complaints are few and are joined to their deliveries by primary key.
    """
    d.without_jit(session)
    now = now or utcnow()
    first_day = (now - dt.timedelta(days=days - 1)).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    when = d.went_out_at()
    counted = rollup.counted_sends()
    by_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0, 0])

    # Settled sends: their per-day counts.
    for day, went_out, session_hard in session.execute(
        select(
            ReportSendDay.day,
            func.sum(ReportSendDay.went_out),
            func.sum(ReportSendDay.session_hard),
        )
        .where(ReportSendDay.day >= first_day, ReportSendDay.send_id.in_(counted))
        .group_by(ReportSendDay.day)
    ):
        by_day[_as_date(day)][0] += int(went_out or 0)
        by_day[_as_date(day)][1] += int(session_hard or 0)

    # The other sends that can reach the window: live.
    live = live_deliveries(session, since)
    live_day = rollup.date_of(session, when).label("day")
    for day, n in session.execute(select(live_day, func.count()).where(live).group_by(live_day)):
        by_day[_as_date(day)][0] += int(n)
    for day, n in rollup.session_hard_by_day(session, live).items():
        by_day[day][1] += n

    # Hard bounce reports (a delivery already hard from its SMTP session counts once).
    in_window = and_(d.went_out(), when >= since)
    reported = session.execute(
        select(
            Delivery.id, when, Delivery.status, Delivery.smtp_code, Delivery.smtp_response
        ).where(
            Delivery.id.in_(
                select(Bounce.delivery_id).where(
                    d.hard_bounce_reports(), Bounce.received_at >= since
                )
            ),
            in_window,
        )
    ).all()
    for _id, at, status, code, response in reported:
        if d.status_value_of(status) in d.FAILED_STATUSES and (
            d.session_failure_kind(code, response or "") is BounceKind.HARD
        ):
            continue
        by_day[at.date()][1] += 1

    # Complaints.
    for (at,) in session.execute(
        select(when).where(
            Delivery.id.in_(
                select(Complaint.delivery_id).where(
                    d.is_complaint(), Complaint.received_at >= since
                )
            ),
            in_window,
        )
    ):
        by_day[at.date()][2] += 1

    out: list[DayRow] = []
    for i in range(days):
        day_ = first_day + dt.timedelta(days=i)
        sent, bounced, complaints = by_day.get(day_, [0, 0, 0])
        out.append(DayRow(day_, sent, bounced, complaints))
    board = Dashboard(
        days=out,
        sent=sum(row.sent for row in out),
        bounced=sum(row.bounced for row in out),
        complaints=sum(row.complaints for row in out),
        warnings=[],
    )
    board.warnings = _warnings(board)
    return board


def live_deliveries(session: Session, since: dt.datetime) -> ColumnElement[bool]:
    """Messages in the window of the sends not yet counted per day (the last few days').

    The send ids are read first (a handful), so the planner sees a short list and probes the
    deliveries' (send_id, status) index for each instead of scanning the table.
    """
    live_sends = list(
        session.scalars(d.sends_reaching(since).where(Send.id.not_in(rollup.counted_sends())))
    )
    return and_(Delivery.send_id.in_(live_sends), d.went_out(), d.went_out_at() >= since)


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


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
