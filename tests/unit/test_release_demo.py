"""The demo newsroom seeds a dozen releases across kinds and beats, once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.releases import media
from distributor.releases.demo import DEMO_BEATS, seed_releases
from distributor.releases.models import Release, ReleaseStatus
from distributor.releases.services import is_publicly_visible
from distributor.settings import Settings
from distributor.storage import storage_for


def test_demo_releases_are_seeded_once_with_photos(session: Session, settings: Settings) -> None:
    lines = seed_releases(session, settings)
    assert lines and "demo releases" in lines[0]
    releases = session.scalars(select(Release)).all()
    assert len(releases) >= 12
    assert {r.kind.name for r in releases} >= {"Press release", "Update", "Report", "Statement"}
    beats = {b.slug for r in releases for b in r.beats}
    assert beats == {slug for slug, _ in DEMO_BEATS}
    now = utcnow()
    states = Counter("public" if is_publicly_visible(r, now) else r.status.value for r in releases)
    assert states["public"] >= 11
    assert states[ReleaseStatus.IN_REVIEW.value] == 1
    embargoed = [r for r in releases if r.embargo_until and r.embargo_until > now]
    assert len(embargoed) == 1 and embargoed[0].status is ReleaseStatus.APPROVED
    for release in releases:
        assert release.photo_key and release.photo_alt and release.photo_credit
        assert storage_for(settings).exists(media.photo_key(release.photo_key, "web"))
        assert release.contacts
    assert seed_releases(session, settings) == []
    assert len(session.scalars(select(Release)).all()) == len(releases)
