"""Library assets (images and documents), their use in releases, and their history."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.accounts.models import User, enum_column
from distributor.audience.models import Beat
from distributor.db import Base, utcnow
from distributor.statemachine import StateMachine


class AssetKind(enum.StrEnum):
    IMAGE = "image"
    DOCUMENT = "document"


class LicenceKind(enum.StrEnum):
    OWN = "own"  # the organisation holds the rights
    EDITORIAL = "editorial"  # editorial use with the credit printed
    CREATIVE_COMMONS = "creative_commons"  # with its version, e.g. "CC BY 4.0"
    LICENSED_UNTIL = "licensed_until"  # an agency licence for a period (rights_until)
    OTHER = "other"  # free text

    @property
    def label(self) -> str:
        return {
            LicenceKind.OWN: "Our own",
            LicenceKind.EDITORIAL: "Editorial use with credit",
            LicenceKind.CREATIVE_COMMONS: "Creative Commons",
            LicenceKind.LICENSED_UNTIL: "Licensed until a date",
            LicenceKind.OTHER: "Other",
        }[self]


class MediaPageSection(enum.StrEnum):
    """Where an asset appears on the public media page ("" : not there)."""

    NONE = ""
    LOGOS = "logos"
    SPOKESPEOPLE = "spokespeople"
    FACT_SHEETS = "fact_sheets"
    PICTURES = "pictures"

    @property
    def label(self) -> str:
        return {
            "": "Not on the media page",
            "logos": "Logos",
            "spokespeople": "Spokespeople",
            "fact_sheets": "Fact sheets",
            "pictures": "Pictures",
        }[self.value]


class RightsState(enum.StrEnum):
    """Whether an asset may still be shown and sent."""

    ACTIVE = "active"
    EXPIRED = "expired"  # hidden from the newsroom, feeds and downloads; blocks sends
    DELETED = "deleted"  # files gone from storage; the row stays for its history


RIGHTS_MACHINE: StateMachine[RightsState] = StateMachine(
    "media asset rights",
    {
        RightsState.ACTIVE: {RightsState.EXPIRED, RightsState.DELETED},
        # Renewed: staff moved the expiry date into the future.
        RightsState.EXPIRED: {RightsState.ACTIVE, RightsState.DELETED},
        RightsState.DELETED: set(),
    },
)


media_asset_beats = Table(
    "media_asset_beats",
    Base.metadata,
    Column("asset_id", ForeignKey("media_assets.id", ondelete="CASCADE"), primary_key=True),
    Column("beat_id", ForeignKey("beats.id", ondelete="CASCADE"), primary_key=True),
)


class MediaAsset(Base):
    __tablename__ = "media_assets"
    __table_args__ = (Index("ix_media_assets_rights", "rights_state", "rights_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random: names the stored files and the public URLs (unguessable before publication).
    key: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[AssetKind] = mapped_column(enum_column(AssetKind))
    title: Mapped[str] = mapped_column(String(300))
    caption: Mapped[str] = mapped_column(Text, default="")
    alt_text: Mapped[str] = mapped_column(Text, default="")
    creator: Mapped[str] = mapped_column(String(200), default="")  # photographer / author
    agency: Mapped[str] = mapped_column(String(200), default="")
    copyright_holder: Mapped[str] = mapped_column(String(200), default="")
    licence: Mapped[LicenceKind] = mapped_column(enum_column(LicenceKind))
    licence_version: Mapped[str] = mapped_column(String(60), default="")  # e.g. CC BY 4.0
    licence_text: Mapped[str] = mapped_column(Text, default="")  # for "other"
    usage_notes: Mapped[str] = mapped_column(Text, default="")
    # The largest width the licence allows to hand out (None: the original's).
    max_download_width: Mapped[int | None]
    rights_until: Mapped[dt.datetime | None]
    rights_state: Mapped[RightsState] = mapped_column(
        enum_column(RightsState), default=RightsState.ACTIVE
    )
    # The rights end date the owner was last warned about (a renewed date warns again).
    expiry_notice_for: Mapped[dt.datetime | None]
    has_consent: Mapped[bool] = mapped_column(default=False)  # people shown have consented
    tags: Mapped[str] = mapped_column(String(500), default="")  # comma-separated, lower case
    media_page: Mapped[MediaPageSection] = mapped_column(
        enum_column(MediaPageSection), default=MediaPageSection.NONE
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(default=0)
    width: Mapped[int | None]
    height: Mapped[int | None]
    # Bumped on every metadata change: downloads are cached per revision.
    revision: Mapped[int] = mapped_column(default=1)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship(lazy="joined")
    beats: Mapped[list[Beat]] = relationship(secondary=media_asset_beats, order_by=Beat.name)
    events: Mapped[list[MediaAssetEvent]] = relationship(
        back_populates="asset",
        cascade="all, delete-orphan",
        order_by="MediaAssetEvent.id.desc()",
    )

    @property
    def is_image(self) -> bool:
        return self.kind is AssetKind.IMAGE

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split(",") if t]


class MediaAssetEvent(Base):
    """One line of an asset's history: uploaded, edited, used, expired, renewed..."""

    __tablename__ = "media_asset_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("media_assets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")

    asset: Mapped[MediaAsset] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship(lazy="joined")


class ReleaseMedia(Base):
    """An asset in a release: the lead image, or a further item in the staff's order."""

    __tablename__ = "release_media"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("media_assets.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    is_lead: Mapped[bool] = mapped_column(default=False)

    asset: Mapped[MediaAsset] = relationship(lazy="joined")
