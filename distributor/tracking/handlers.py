"""The tracking package's receivers: the tracked links and URLs of a release mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from distributor.settings import Settings
from distributor.signals import LinkTracking, tracking_links
from distributor.tracking import links


def _tracking_links(
    release_id: int, *, session: Session, settings: Settings, urls: list[str], **_: Any
) -> LinkTracking:
    return LinkTracking(
        link_ids=links.register_links(session, release_id, urls) if urls else {},
        pixel_url=lambda token: links.pixel_url(settings, token),
        click_url=lambda token, link_id: links.click_url(settings, token, link_id),
    )


def connect() -> None:
    """Connect the receivers (idempotent: blinker keeps one connection per receiver)."""
    tracking_links.connect(_tracking_links, weak=False)
