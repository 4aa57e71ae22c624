"""Library services on real storage (a temporary folder) and the test database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.errors import IllegalTransition, ValidationFailed
from distributor.media import downloads, rights, services
from distributor.media.models import LicenceKind, RightsState
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from distributor.storage import LocalStorage
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
    session: Session, storage: LocalStorage, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        add_asset(session, storage, now=NOW, **overrides)


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

    def ids(**kw: Any) -> set[int]:
        found = services.search_assets(
            session,
            services.AssetQuery(**kw),
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


def test_deleting_a_used_asset_asks_first_then_removes_every_file(
    session: Session, storage: LocalStorage
) -> None:
    now = utcnow()
    asset = add_asset(session, storage, now=now)
    release = factories.make_release(session, status=ReleaseStatus.APPROVED, now=now)
    release.published_at = now - dt.timedelta(minutes=1)
    services.add_to_release(session, release, asset, as_lead=True, actor_id=None, now=now)
    built = [
        downloads.prepare_download(storage, asset, "original").key,
        downloads.prepare_rendition(storage, asset, 480, "webp").key,
        downloads.press_kit(storage, release, [asset], org_name="O", release_url="u").key,
    ]
    session.commit()
    with pytest.raises(ValidationFailed, match=r"used in 1 release\(s\).*Confirm"):
        services.delete_asset(session, storage, asset, confirmed=False, actor_id=None, now=now)
    assert asset.rights_state is RightsState.ACTIVE and storage.exists(built[0])

    services.delete_asset(session, storage, asset, confirmed=True, actor_id=None, now=now)
    assert all(storage.exists(k) for k in built)  # not before the commit
    session.commit()
    assert not any(storage.exists(k) for k in [*built, services.original_key(asset)])
    assert asset.rights_state is RightsState.DELETED
    assert services.where_used(session, asset.id) == []
    assert [e.action for e in asset.events][:2] == ["deleted", "removed"]
    assert not services.is_available(asset, now)
    assert asset not in services.search_assets(session, services.AssetQuery(), now=now, warn_days=7)
    with pytest.raises(ValidationFailed):
        services.update_asset(session, asset, details(), actor_id=None, now=now)


def test_an_unused_asset_is_deleted_at_once_but_not_during_a_send(
    session: Session, storage: LocalStorage
) -> None:
    now = utcnow()
    lone = add_asset(session, storage, now=now)
    services.delete_asset(session, storage, lone, confirmed=False, actor_id=None, now=now)
    assert lone.rights_state is RightsState.DELETED
    busy = add_asset(session, storage, now=now)
    release = factories.make_release(session, now=now)
    services.add_to_release(session, release, busy, as_lead=False, actor_id=None, now=now)
    release.status = ReleaseStatus.SENDING
    with pytest.raises(ValidationFailed, match="being sent"):
        services.delete_asset(session, storage, busy, confirmed=True, actor_id=None, now=now)


def test_the_sweep_removes_built_files_no_page_may_name(
    session: Session, storage: LocalStorage
) -> None:
    now = utcnow()
    kept = add_asset(session, storage, now=now, title="Kept")
    ending = add_asset(
        session, storage, now=now, title="Ending", rights_until=now + dt.timedelta(hours=1)
    )
    release = factories.make_release(session, status=ReleaseStatus.APPROVED, now=now)
    release.published_at = now - dt.timedelta(minutes=1)
    for asset in (kept, ending):
        services.add_to_release(session, release, asset, as_lead=False, actor_id=None, now=now)
    old_kit = downloads.press_kit(storage, release, [kept, ending], org_name="O", release_url="u")
    old_download = downloads.prepare_download(storage, kept, "web").key
    ending_download = downloads.prepare_download(storage, ending, "web").key
    services.update_asset(
        session, kept, details(title="Kept", agency="New"), actor_id=None, now=now
    )
    current = downloads.prepare_download(storage, kept, "web").key
    assert storage.exists(old_download) and current != old_download
    # The old kit, and the old credit's web and original (built for the kit) downloads.
    assert downloads.sweep_built_files(session, storage, now) == 3
    assert not storage.exists(old_kit.key) and not storage.exists(old_download)
    assert storage.exists(current) and storage.exists(ending_download)

    later = now + dt.timedelta(hours=2)
    rights.expire_due(session, later)
    kit = downloads.press_kit(storage, release, [kept], org_name="O", release_url="u")
    assert downloads.sweep_built_files(session, storage, later) == 2  # its web and original
    assert not storage.exists(ending_download)
    assert storage.exists(kit.key) and storage.exists(current)
    assert storage.exists(services.original_key(ending))  # staff may still renew it
