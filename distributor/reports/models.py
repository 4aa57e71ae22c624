from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base


class ReportSendCount(Base):
    """A finished send whose messages per day were counted into ``report_send_days``.

    The counts stand for the send while ``counted_at`` is later than the send's
    ``finished_at``: a send reopened (staff retry failures or resend those in doubt) finishes
    again later, and is counted again.
    """

    __tablename__ = "report_send_counts"

    send_id: Mapped[int] = mapped_column(
        ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    counted_at: Mapped[dt.datetime]


class ReportSendDay(Base):
    """How many of one settled send's messages went out on one UTC day, and how many of them
    the receiving server refused as hard bounces during the SMTP session."""

    __tablename__ = "report_send_days"

    send_id: Mapped[int] = mapped_column(
        ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    went_out: Mapped[int] = mapped_column(default=0)
    session_hard: Mapped[int] = mapped_column(default=0)
