"""Demo newsroom for `make run`: one of the demo releases with a photo is featured."""

from __future__ import annotations

from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.newsroom import services as newsroom
from distributor.settings import Settings


def seed_newsroom_demo(session: Session, _settings: Settings) -> list[str]:
    """Feature a demo release with a photo, unless one is featured already."""
    notes: list[str] = []
    if newsroom.featured_release(session, utcnow()) is None:
        page = newsroom.list_public_releases(session, utcnow(), per_page=3)
        with_photo = [r for r in page.items if r.photo_key]
        if with_photo:
            newsroom.set_featured(session, with_photo[0], True)
            notes.append(f"newsroom: featured {with_photo[0].title!r}")
    session.flush()
    return notes
