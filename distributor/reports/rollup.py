"""Per-day counts of settled sends, so the 30-day dashboard need not read every delivery.

A send is settled once its messages can no longer change: finished ``SETTLE`` ago with no
digest row still waiting. Reopening a send (staff retry failures or resend those in doubt)
sets a new ``finished_at`` later than its ``counted_at``, and it is read live again until it
settles and is counted anew. What counts as "went out" and as a hard bounce is
``distributor.reports.definitions``'s.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from distributor.delivery.models import Delivery, Send, SendStatus
from distributor.reports import definitions as d
from distributor.reports.models import ReportSendCount, ReportSendDay

SETTLE = dt.timedelta(days=2)


def date_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp, as a date."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def counted_sends() -> Select[Any]:
    """Sends whose per-day counts stand for them."""
    return (
        select(ReportSendCount.send_id)
        .join(Send, Send.id == ReportSendCount.send_id)
        .where(
            Send.status == SendStatus.FINISHED,
            Send.finished_at.is_not(None),
            ReportSendCount.counted_at >= Send.finished_at,
        )
    )


def count_settled_sends(session: Session, *, now: dt.datetime, limit: int = 20) -> int:
    """Count the messages of up to ``limit`` newly settled sends per day; returns how many."""
    waiting = exists(
        select(Delivery.id).where(
            Delivery.send_id == Send.id, d.status_in(Delivery.status, d.DIGEST_STATUSES)
        )
    )
    due = list(
        session.scalars(
            select(Send.id)
            .outerjoin(ReportSendCount, ReportSendCount.send_id == Send.id)
            .where(
                Send.status == SendStatus.FINISHED,
                Send.finished_at < now - SETTLE,
                or_(
                    ReportSendCount.counted_at.is_(None),
                    ReportSendCount.counted_at < Send.finished_at,
                ),
                ~waiting,
            )
            .order_by(Send.id)
            .limit(limit)
        )
    )
    for send_id in due:
        _count_send(session, send_id, now)
    session.flush()
    return len(due)


def _count_send(session: Session, send_id: int, now: dt.datetime) -> None:
    scope = and_(Delivery.send_id == send_id, d.went_out())
    day = date_of(session, d.went_out_at())
    session.execute(delete(ReportSendDay).where(ReportSendDay.send_id == send_id))
    session.execute(
        insert(ReportSendDay).from_select(
            ["send_id", "day", "went_out", "session_hard"],
            select(Delivery.send_id, day, func.count(), literal(0))
            .where(scope)
            .group_by(Delivery.send_id, day),
        )
    )
    for hard_day, n in session_hard_by_day(session, scope).items():
        row = session.get(ReportSendDay, (send_id, hard_day))
        if row is not None:
            row.session_hard = n
    marker = session.get(ReportSendCount, send_id)
    if marker is None:
        session.add(ReportSendCount(send_id=send_id, counted_at=now))
    else:
        marker.counted_at = now


def session_hard_by_day(session: Session, where: ColumnElement[bool]) -> Counter[dt.date]:
    """Hard bounces refused during the SMTP session among ``where``, by the day they went out."""
    hard = [i for i, kind in d.session_failures(session, where).items() if kind == "hard"]
    days: Counter[dt.date] = Counter()
    if hard:
        for (when,) in session.execute(select(d.went_out_at()).where(Delivery.id.in_(hard))).all():
            days[when.date() if isinstance(when, dt.datetime) else when] += 1
    return days
