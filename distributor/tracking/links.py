"""Tracked links and tracking URLs, called by the renderer once per release and per recipient.

``register_links`` runs once per release render; ``pixel_url`` and ``click_url`` run once per
recipient and are pure string formatting (no database, no URL building machinery).
"""

from __future__ import annotations

import hashlib
import html
import re

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from distributor.settings import Settings
from distributor.tracking.models import TrackedLink

# Path shapes of the public endpoints in distributor.tracking.views (kept in one place).
PIXEL_PATH = "/t/o/{token}.gif"
CLICK_PATH = "/t/c/{token}/{link_id}"


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def register_links(session: Session, release_id: int, urls: list[str]) -> dict[str, int]:
    """Register the release's link URLs (idempotent, safe under concurrent renders): url -> id."""
    wanted: dict[str, str] = {}
    for url in urls:
        if url and url not in wanted:
            wanted[url] = url_hash(url)
    if not wanted:
        return {}
    existing = _lookup(session, release_id, list(wanted.values()))
    missing = [url for url, digest in wanted.items() if digest not in existing]
    if missing:
        start = session.scalar(
            select(func.coalesce(func.max(TrackedLink.position), -1)).where(
                TrackedLink.release_id == release_id
            )
        )
        rows = [
            {
                "release_id": release_id,
                "position": int(start or 0) + 1 + i,
                "url": url,
                "url_hash": wanted[url],
            }
            for i, url in enumerate(missing)
        ]
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # A concurrent render may insert the same URL first; the unique key makes us agree.
        stmt = insert(TrackedLink).on_conflict_do_nothing(index_elements=["release_id", "url_hash"])
        session.execute(stmt, rows)
        existing = _lookup(session, release_id, list(wanted.values()))
    return {url: existing[digest] for url, digest in wanted.items()}


def _lookup(session: Session, release_id: int, digests: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(TrackedLink.url_hash, TrackedLink.id).where(
            TrackedLink.release_id == release_id, TrackedLink.url_hash.in_(digests)
        )
    )
    return {digest: link_id for digest, link_id in rows}


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def pixel_url(settings: Settings, token: str) -> str:
    """The open pixel's URL for one delivery (``token`` is its opaque ``verp_token``)."""
    return _base(settings) + PIXEL_PATH.format(token=token)


def click_url(settings: Settings, token: str, link_id: int) -> str:
    """The click redirect's URL for one delivery and one registered link."""
    return _base(settings) + CLICK_PATH.format(token=token, link_id=link_id)


# Any host: a message in the dev inbox may predate a change of PUBLIC_BASE_URL or PORT.
_PIXEL_TAG = re.compile(r"<img\b[^>]*?/t/o/[^/\"'\s<>]+\.gif[^>]*>", re.IGNORECASE)
_PIXEL_URL = re.compile(r"https?://[^\s\"'<>]+/t/o/[^/\"'\s<>]+\.gif")
_CLICK_URL = re.compile(r"https?://[^\s\"'<>]+/t/c/[^/\"'\s<>]+/(\d+)")


def without_tracking(session: Session, content: str, *, is_html: bool) -> str:
    """The message with its open pixel removed and click redirects replaced by their targets.

    Staff reading a mail in the dev inbox are not the journalist it was addressed to: showing
    the tracked original would record an open and clicks in that journalist's name.
    """
    if is_html:
        content = _PIXEL_TAG.sub("", content)
    content = _PIXEL_URL.sub("", content)
    ids = {int(m.group(1)) for m in _CLICK_URL.finditer(content)}
    if not ids:
        return content
    rows = session.execute(select(TrackedLink.id, TrackedLink.url).where(TrackedLink.id.in_(ids)))
    targets = {link_id: url for link_id, url in rows}

    def target(match: re.Match[str]) -> str:
        url = targets.get(int(match.group(1)), "#")
        return html.escape(url, quote=True) if is_html else url

    return _CLICK_URL.sub(target, content)
