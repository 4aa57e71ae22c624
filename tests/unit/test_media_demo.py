"""The demo library: credited pictures, a fact sheet, one asset expiring soon, seeded once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.media import images, services
from distributor.media.demo import GALLERY_RELEASE, seed_media
from distributor.media.models import LicenceKind
from distributor.releases.demo import seed_releases
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.storage import storage_for


def test_demo_library_is_seeded_once(session: Session, settings: Settings) -> None:
    seed_releases(session, settings)
    lines = seed_media(session, settings)
    assert lines and "rights end in 5 days" in lines[0]
    now = utcnow()
    found = services.search_assets(session, services.AssetQuery(tag="demo"), now=now, warn_days=7)
    assert len(found) == 4
    assert {a.licence for a in found} >= {LicenceKind.OWN, LicenceKind.LICENSED_UNTIL}
    expiring = services.search_assets(
        session, services.AssetQuery(tag="demo", rights=services.RightsFilter.EXPIRING),
        now=now, warn_days=7,
    )  # fmt: skip
    assert [a.title for a in expiring] == ["Boats at low tide"]
    storage = storage_for(settings)
    fact_sheet = next(a for a in found if not a.is_image)
    assert images.check_upload(storage.read(services.original_key(fact_sheet))).ext == ".pdf"
    release = session.query(Release).filter_by(slug=GALLERY_RELEASE).one()
    assert len(services.release_media(session, release.id)) == 3
    assert seed_media(session, settings) == []
