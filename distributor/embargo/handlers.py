"""The embargo room's receivers: room links in release mail, rooms for a frozen audience, merges."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.embargo import services, tokens
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.signals import RoomLinks, compiling_release, journalists_merged, recipients_frozen


def room_url(settings: Settings, release_id: int, journalist_id: int) -> str:
    """A journalist's personal room link for a release."""
    token = tokens.room_token(settings, release_id, journalist_id)
    return f"{settings.public_base_url}/embargo/{token}"


def _room_links(
    release: Release, *, session: Session, settings: Settings, **_: Any
) -> RoomLinks | None:
    if not services.is_under_embargo(release, utcnow()):
        return None
    options = services.options_for(session, release.id)
    terms = services.current_terms(session) if options.requires_terms else None
    release_id = release.id
    return RoomLinks(
        url_for=lambda journalist_id: room_url(settings, release_id, journalist_id),
        requires_terms=terms is not None,
        terms_summary=terms.summary if terms is not None else "",
    )


def _grant(release_id: int, *, session: Session, now: dt.datetime, **_: Any) -> None:
    services.grant_accesses(session, release_id, now)


def _merge(keep_id: int, *, session: Session, merged_id: int, **_: Any) -> None:
    services.merge_into(session, keep_id=keep_id, merged_id=merged_id, now=utcnow())


def connect() -> None:
    """Connect the receivers (idempotent: blinker keeps one connection per receiver)."""
    compiling_release.connect(_room_links, weak=False)
    recipients_frozen.connect(_grant, weak=False)
    journalists_merged.connect(_merge, weak=False)
