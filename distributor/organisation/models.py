"""The organisation that runs this distributor: identity, contacts, time zone, tracking policy."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.db import Base, utcnow

DEFAULT_BRAND_COLOUR = "#0d5b74"  # the newsroom's sea blue


class Organisation(Base):
    """The single organisation this installation speaks for (one row).

    The environment (``ORG_NAME`` and friends) only seeds this row on first run; after that
    admins edit it on the Organisation page and the newsroom and every mail read it here.
    """

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tagline: Mapped[str] = mapped_column(String(300), default="")
    postal_address: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    press_email: Mapped[str] = mapped_column(String(320))
    website_url: Mapped[str] = mapped_column(String(500), default="")
    is_tracking_enabled: Mapped[bool] = mapped_column(default=True)
    # Identity: the logo is stored like release photos (a random key, re-encoded by Pillow).
    logo_key: Mapped[str | None] = mapped_column(String(200))
    brand_colour: Mapped[str] = mapped_column(
        String(7), default=DEFAULT_BRAND_COLOUR, server_default=DEFAULT_BRAND_COLOUR
    )
    # "About the organisation": printed as "Notes to editors" under every release.
    boilerplate: Mapped[str] = mapped_column(Text, default="", server_default="")
    # One link per line; the newsroom names each by its host.
    social_links: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    spokespeople: Mapped[list[Spokesperson]] = relationship(
        back_populates="organisation",
        cascade="all, delete-orphan",
        order_by="Spokesperson.position, Spokesperson.id",
    )

    @property
    def social_link_list(self) -> list[str]:
        return [line.strip() for line in self.social_links.splitlines() if line.strip()]


class Spokesperson(Base):
    """Someone journalists may call for comment, shown on the newsroom home."""

    __tablename__ = "spokespeople"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    photo_key: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="spokespeople")
