from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, utcnow


class Organisation(Base):
    """The single organisation this installation speaks for (one row)."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tagline: Mapped[str] = mapped_column(String(300), default="")
    postal_address: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    press_email: Mapped[str] = mapped_column(String(320))
    website_url: Mapped[str] = mapped_column(String(500), default="")
    is_tracking_enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
