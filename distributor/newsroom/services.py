"""What the public may see: the newsroom listing, permalinks, feeds, sitemap and search.

Every query here goes through ``public_release_filter`` so that the newsroom, the feeds, the
sitemap and search agree with ``releases.workflow.is_publicly_visible``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal_column, or_, select, update
from sqlalchemy.orm import Session, defer, selectinload

from distributor.audience.models import Beat
from distributor.errors import NotFound
from distributor.releases.models import (
    PUBLIC_STATUSES,
    Release,
    ReleaseKind,
    ReleaseStatus,
    release_beats,
    search_document,
)
from distributor.releases.workflow import is_publicly_visible

PER_PAGE = 12
MAX_QUERY_LENGTH = 200


def public_release_filter(now: dt.datetime) -> ColumnElement[bool]:
    """SQL twin of ``is_publicly_visible``."""
    return and_(
        Release.status.in_(PUBLIC_STATUSES),
        Release.published_at.is_not(None),
        Release.published_at <= now,
        or_(Release.embargo_until.is_(None), Release.embargo_until <= now),
    )


def _search_condition(session: Session, query: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), query)
        return search_document().op("@@")(tsquery)
    # SQLite: every word must appear in the title, summary or body.
    conditions = []
    for word in re.findall(r"\w+", query)[:8]:
        pattern = f"%{word}%"
        conditions.append(
            or_(
                Release.title.ilike(pattern),
                Release.summary.ilike(pattern),
                Release.body_markdown.ilike(pattern),
            )
        )
    return and_(*conditions) if conditions else and_(True)


@dataclass(frozen=True)
class Page:
    items: Sequence[Release]
    number: int
    has_previous: bool
    has_next: bool


def list_public_releases(
    session: Session,
    now: dt.datetime,
    *,
    kind: str | None = None,
    beat: str | None = None,
    query: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of the newsroom, newest first, optionally filtered by kind, beat and text."""
    page = max(1, page)
    stmt = select(Release).where(public_release_filter(now))
    if kind:
        stmt = stmt.where(
            Release.kind_id
            == select(ReleaseKind.id).where(ReleaseKind.slug == kind).scalar_subquery()
        )
    if beat:
        stmt = stmt.where(
            exists().where(
                release_beats.c.release_id == Release.id,
                release_beats.c.beat_id
                == select(Beat.id).where(Beat.slug == beat, Beat.is_public).scalar_subquery(),
            )
        )
    if query and query.strip():
        stmt = stmt.where(_search_condition(session, query.strip()[:MAX_QUERY_LENGTH]))
    # One query for the page (+1 row to know whether there is a next page), one for the beats.
    rows = session.scalars(
        stmt.order_by(Release.published_at.desc(), Release.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
        # The listing never shows the Markdown source; leave it (the biggest column) behind.
        .options(selectinload(Release.beats), defer(Release.body_markdown))
    ).all()
    return Page(
        items=rows[:per_page],
        number=page,
        has_previous=page > 1,
        has_next=len(rows) > per_page,
    )


def get_public_release(session: Session, slug: str, now: dt.datetime) -> Release:
    release = session.scalar(
        select(Release)
        .where(Release.slug == slug)
        .options(
            selectinload(Release.beats),
            selectinload(Release.contacts),
            selectinload(Release.attachments),
        )
    )
    if release is None or not is_publicly_visible(release, now):
        raise NotFound("No such release.")
    return release


def get_release_by_preview_token(session: Session, token: str) -> Release:
    release = session.scalar(select(Release).where(Release.preview_token == token))
    if release is None or len(token) < 20:
        raise NotFound("This preview link is not valid.")
    if release.status is ReleaseStatus.WITHDRAWN:
        # A withdrawn release's reviewer link dies with it (restoring it as a draft revives it).
        raise NotFound("This preview link is not valid.")
    return release


def release_by_photo_key(session: Session, key: str) -> Release | None:
    """The release whose lead photo has this random key."""
    return session.scalar(select(Release).where(Release.photo_key == key).limit(1))


def is_spokesperson_photo(session: Session, key: str) -> bool:
    """A spokesperson's photo: public, the newsroom page shows it."""
    from distributor.organisation.models import Spokesperson

    return session.scalar(select(Spokesperson.id).where(Spokesperson.photo_key == key)) is not None


def feed_releases(
    session: Session, now: dt.datetime, *, beat: str | None = None, limit: int = 30
) -> list[Release]:
    return list(
        list_public_releases(session, now, beat=beat, per_page=limit).items,
    )


def sitemap_entries(session: Session, now: dt.datetime) -> list[Any]:
    return list(
        session.execute(
            select(Release.slug, Release.updated_at, Release.published_at)
            .where(public_release_filter(now))
            .order_by(Release.published_at.desc())
            .limit(50_000)  # the sitemap protocol's limit per file
        )
    )


def public_beats(session: Session) -> list[Beat]:
    return list(session.scalars(select(Beat).where(Beat.is_public).order_by(Beat.name)))


def get_public_beat(session: Session, slug: str) -> Beat:
    beat = session.scalar(select(Beat).where(Beat.slug == slug, Beat.is_public))
    if beat is None:
        raise NotFound("No such beat.")
    return beat


def kinds(session: Session) -> list[ReleaseKind]:
    return list(session.scalars(select(ReleaseKind).order_by(ReleaseKind.position)))


def featured_release(session: Session, now: dt.datetime) -> Release | None:
    """The release pinned to the top of the newsroom home, if it is public."""
    return session.scalar(
        select(Release)
        .where(Release.is_featured.is_(True), public_release_filter(now))
        .order_by(Release.published_at.desc())
        .limit(1)
    )


def set_featured(session: Session, release: Release, is_featured: bool) -> None:
    """Pin ``release`` to the newsroom home (unpinning any other), or unpin it."""
    if is_featured:
        session.execute(
            update(Release)
            .where(Release.is_featured.is_(True), Release.id != release.id)
            .values(is_featured=False)
        )
    release.is_featured = is_featured
    session.flush()


def embargoed_release(session: Session, slug: str, now: dt.datetime) -> Release | None:
    """A release that will be public once its embargo lifts (approved or sent, not withdrawn)."""
    release = session.scalar(select(Release).where(Release.slug == slug))
    if (
        release is not None
        and release.status in PUBLIC_STATUSES
        and release.embargo_until is not None
        and release.embargo_until > now
    ):
        return release
    return None
