"""Library services on real storage (a temporary folder) and the test database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.errors import IllegalTransition, ValidationFailed
from distributor.media import downloads, rights, services
from distributor.media.models import LicenceKind, RightsState
from distributor.media.storage import LocalStorage
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support import releases as factories
from tests.support.media import add_asset, details, exiftool

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture()
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path)


def test_upload_stores_the_original_once_and_records_history(
    session: Session, storage: LocalStorage
) -> None:
    asset = add_asset(session, storage, now=NOW)
    assert storage.exists(services.original_key(asset))
    assert asset.tag_list == ["flood", "harbour"]
    assert [e.action for e in asset.events] == ["uploaded"]
    assert downloads.credit_line(asset) == "Photo: Jane Doe/Coastline Pictures"
    assert downloads.copyright_notice(asset) == "© 2026 Coastline Pictures Ltd"
    assert "Editorial use only" in downloads.usage_terms(asset)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": " "}, "title"),
        ({"alt_text": ""}, "alt text"),
        ({"creator": "", "agency": "", "copyright_holder": ""}, "credit"),
        ({"licence": LicenceKind.CREATIVE_COMMONS}, "Creative Commons"),
        ({"licence": LicenceKind.LICENSED_UNTIL}, "date"),
        ({"licence": LicenceKind.OTHER}, "licence"),
    ],
)
def test_upload_refuses_incomplete_rights(
    session: Session, storage: LocalStorage, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        add_asset(session, storage, now=NOW, **overrides)  # type: ignore[arg-type]


def test_search_filters_by_words_and_fields(session: Session, storage: LocalStorage) -> None:
    beat = factories.beat(session, "coast", "Coast")
    wall = add_asset(session, storage, now=NOW, beat_ids=[beat.id], has_consent=True)
    doc = add_asset(
        session,
        storage,
        data=b"%PDF-1.7 fact sheet",
        filename="facts.pdf",
        now=NOW,
        title="Fact sheet",
        alt_text="",
        licence=LicenceKind.OWN,
        tags="facts",
        rights_until=NOW + dt.timedelta(days=3),
    )

    def ids(**kw: object) -> set[int]:
        found = services.search_assets(
            session,
            services.AssetQuery(**kw),  # type: ignore[arg-type]
            now=NOW,
            warn_days=7,
        )
        return {a.id for a in found} & {wall.id, doc.id}

    assert ids(text="coastline dawn") == {wall.id}
    assert ids(kind="document") == {doc.id}
    assert ids(licence="editorial") == {wall.id}
    assert ids(beat_id=beat.id) == {wall.id}
    assert ids(tag="Facts") == {doc.id}
    assert ids(consent="yes") == {wall.id}
    assert ids(rights=services.RightsFilter.EXPIRING) == {doc.id}


def test_sweep_expires_rights_and_hides_the_asset(session: Session, storage: LocalStorage) -> None:
    asset = add_asset(session, storage, now=NOW, rights_until=NOW + dt.timedelta(days=1))
    release = factories.make_release(session, status=ReleaseStatus.APPROVED, now=NOW)
    services.add_to_release(session, release, asset, as_lead=True, actor_id=None, now=NOW)
    assert services.visible_release_media(session, release.id, NOW) != []
    assert rights.expire_due(session, NOW) == []

    later = NOW + dt.timedelta(days=2)
    assert services.visible_release_media(session, release.id, later) == []  # before the sweep
    assert rights.expire_due(session, later) == [asset.id]
    assert rights.expire_due(session, later) == []  # a second run finds nothing
    assert asset.rights_state is RightsState.EXPIRED
    assert asset.events[0].action == "expired"
    with pytest.raises(ValidationFailed):
        services.add_to_release(session, release, asset, as_lead=False, actor_id=None, now=later)

    # Renewing the licence shows it again, and the history says so.
    services.update_asset(
        session,
        asset,
        details(rights_until=later + dt.timedelta(days=30)),
        actor_id=None,
        now=later,
    )
    assert asset.rights_state is RightsState.ACTIVE
    assert [e.action for e in asset.events][:2] == ["renewed", "edited"]
    with pytest.raises(IllegalTransition):
        services.move_rights(asset, RightsState.ACTIVE)


def test_rights_problems_block_expired_and_warn_before_the_embargo(
    session: Session, storage: LocalStorage
) -> None:
    soon = add_asset(
        session, storage, now=NOW, title="Soon", rights_until=NOW + dt.timedelta(days=20)
    )
    release = factories.make_release(session, now=NOW)
    release.embargo_until = NOW + dt.timedelta(days=30)
    services.add_to_release(session, release, soon, as_lead=False, actor_id=None, now=NOW)
    problems = rights.rights_problems(session, release, now=NOW, warn_days=7)
    assert [(p.is_blocking, "before the embargo lifts" in p.detail) for p in problems] == [
        (False, True)
    ]
    rights.refuse_expired_rights(session, release, now=NOW)  # a warning does not block

    after = NOW + dt.timedelta(days=21)
    problems = rights.rights_problems(session, release, now=after, warn_days=7)
    assert [p.is_blocking for p in problems] == [True]
    with pytest.raises(ValidationFailed, match="rights have ended"):
        rights.refuse_expired_rights(session, release, now=after)


def test_gallery_order_lead_and_where_used(session: Session, storage: LocalStorage) -> None:
    a, b, c = (add_asset(session, storage, now=NOW, title=t) for t in "ABC")
    release = factories.make_release(session, now=NOW)
    for asset in (a, b, c):
        services.add_to_release(session, release, asset, as_lead=False, actor_id=None, now=NOW)
    services.add_to_release(session, release, b, as_lead=True, actor_id=None, now=NOW)
    services.move_in_release(session, release, c.id, -1)
    assert [m.asset.title for m in services.release_media(session, release.id)] == ["B", "C", "A"]
    assert [r.id for r, _ in services.where_used(session, a.id)] == [release.id]
    services.remove_from_release(session, release, a, actor_id=None, now=NOW)
    assert services.where_used(session, a.id) == []
    assert [e.action for e in a.events][:2] == ["removed", "used"]


def test_downloads_are_built_once_per_revision_with_the_current_credit(
    session: Session, storage: LocalStorage
) -> None:
    asset = add_asset(session, storage, now=utcnow())
    first = downloads.prepare_download(storage, asset, "original")
    assert first.filename == "harbour.jpg" and storage.exists(first.key)
    assert downloads.prepare_download(storage, asset, "original").key == first.key
    services.update_asset(
        session, asset, details(agency="Harbour Agency"), actor_id=None, now=utcnow()
    )
    second = downloads.prepare_download(storage, asset, "web")
    assert second.key != first.key and second.filename == "harbour-web.jpg"
    tags = exiftool(storage.read(second.key))
    assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Harbour Agency"


def test_owner_is_warned_once_per_rights_end_date(
    session: Session, storage: LocalStorage, settings: Settings
) -> None:
    from contextlib import contextmanager

    from distributor.accounts.models import Role
    from distributor.mail.rendering import EmailRenderer
    from distributor.mail.transport import InMemoryTransport
    from tests.support.delivery_factories import organisation
    from tests.support.releases import staff

    @contextmanager
    def same() -> Iterator[Session]:
        yield session
        session.flush()

    organisation(session, settings)
    owner = staff(session, Role.PRESS_OFFICER)
    now = utcnow()
    asset = add_asset(session, storage, now=now, rights_until=now + dt.timedelta(days=10))
    asset.owner_id = owner.id
    far = add_asset(session, storage, now=now, rights_until=now + dt.timedelta(days=60))
    far.owner_id = owner.id
    session.flush()
    transport = InMemoryTransport()

    def sweep() -> int:
        return rights.send_expiry_notices(
            same, settings=settings, renderer=EmailRenderer(), transport=transport, now=lambda: now
        )

    assert sweep() == 1
    mail = transport.sent[0]
    assert mail.recipients == [owner.email]
    text = mail.message.decode("utf-8", "replace")
    assert "Rights end" in text and "Harbour wall at dawn" in text
    assert sweep() == 0  # once per date
    assert asset.events[0].action == "owner warned"
    # A renewed licence with a new end date, ending soon again, warns again.
    services.update_asset(
        session, asset, details(rights_until=now + dt.timedelta(days=12)), actor_id=None, now=now
    )
    assert sweep() == 1
