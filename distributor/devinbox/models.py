from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, utcnow


class DevMessage(Base):
    """A message received by the development SMTP inbox, kept whole."""

    __tablename__ = "dev_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    mail_from: Mapped[str] = mapped_column(String(500))
    rcpt_to: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int]
    raw: Mapped[bytes] = mapped_column(LargeBinary)
