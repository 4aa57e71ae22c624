"""The media library through the Flask test client: upload with rights, use in a release, public
gallery and downloads with the credit inside, expiry hiding the asset and blocking the send."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import re
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.db import utcnow
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.checklist import DnsUnavailable
from distributor.delivery.models import Send
from distributor.delivery.rendering import compile_release, staff_recipient
from distributor.media import rights, services
from distributor.media.models import MediaAsset, RightsState
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token
from tests.support.media import exiftool, photo_with_exif


class OfflineResolver:
    def txt(self, name: str) -> list[str]:
        raise DnsUnavailable("no network in tests")


def _mail(session: Session, release_id: int, settings: Settings) -> tuple[str, str]:
    compiled = compile_release(session, release_id, settings)
    raw = compiled.message_for(staff_recipient(email="m@example.org", name="M", label="test"))[2]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def _upload(client: FlaskClient, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "csrf_token": csrf_token(client, "/staff/media/new"),
        "file": (io.BytesIO(photo_with_exif()), "harbour wall.jpg"),
        "title": "Harbour wall at dawn",
        "caption": "The new flood wall at Portmere harbour.",
        "alt_text": "A concrete wall along a harbour at sunrise",
        "creator": "Jane Doe",
        "agency": "Coastline Pictures",
        "copyright_holder": "Coastline Pictures Ltd",
        "licence": "licensed_until",
        "rights_until": (utcnow() + dt.timedelta(days=3)).date().isoformat(),
        "usage_notes": "Not for advertising.",
        "has_consent": "y",
        "tags": "flood, harbour",
    }
    data.update(fields)
    return client.post("/staff/media/new", data=data, content_type="multipart/form-data")


def test_press_officer_builds_a_gallery_and_expired_rights_go_dark(
    app: Flask,
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app.extensions["distributor.dns_resolver"] = OfflineResolver()
    monkeypatch.setattr(engine_tasks.dispatch_send, "delay", lambda *a: None)
    logged_in(Role.EDITOR)
    f.organisation(session, settings)
    release = f.release(session)
    release.status = ReleaseStatus.APPROVED
    release.published_at = utcnow() - dt.timedelta(minutes=1)
    release.photo_key = None  # no uploaded lead photo: the library's lead image is the one
    f.audience(session, release, count=2)
    session.commit()

    # A file without alt text is refused and nothing is stored.
    refused = _upload(client, alt_text="")
    assert refused.status_code == 200 and "alt text" in refused.get_data(as_text=True)

    response = _upload(client)
    assert response.status_code == 303
    asset_id = int(re.search(r"/staff/media/(\d+)$", response.headers["Location"]).group(1))
    page = client.get(f"/staff/media/{asset_id}").get_data(as_text=True)
    assert "Photo: Jane Doe/Coastline Pictures" in page and "Uploaded" in page

    library = client.get("/staff/media/?q=coastline&consent=yes&rights=expiring").get_data(
        as_text=True
    )
    assert "Harbour wall at dawn" in library
    assert "Harbour wall at dawn" not in client.get("/staff/media/?rights=expired").get_data(
        as_text=True
    )

    # Into the release as its lead image, from the release page.
    show = f"/staff/releases/{release.id}"
    added = client.post(
        f"{show}/gallery/lead",
        data={"csrf_token": csrf_token(client, show), "asset_id": asset_id},
    )
    assert added.status_code == 303
    assert f"/staff/media/{asset_id}" in client.get(show).get_data(as_text=True)
    assert release.title in client.get(f"/staff/media/{asset_id}").get_data(as_text=True)

    # The public page shows it with its credit and both downloads.
    asset = session.get(MediaAsset, asset_id)
    assert asset is not None
    public = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "Photo: Jane Doe/Coastline Pictures" in public
    original_url = f"/media/library/{asset.key}/original"
    assert original_url in public
    original = client.get(original_url)
    assert original.status_code == 200 and original.mimetype == "image/jpeg"
    assert 'filename="harbour wall.jpg"' in original.headers["Content-Disposition"]
    tags = exiftool(original.data)
    assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"
    assert "Not to be used after" in str(tags["XMP-xmpRights:UsageTerms"])
    assert not any(k.startswith("GPS") for k in tags)

    # Pages show pictures at three widths, WebP with a JPEG fallback, cached for a year.
    webp = f"/media/library/{asset.key}/r{asset.revision}/960.webp"
    assert webp in public and f"/media/library/{asset.key}/r{asset.revision}/480.jpg" in public
    shown = client.get(webp)
    assert shown.status_code == 200 and shown.mimetype == "image/webp"
    assert shown.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Disposition" not in shown.headers
    with Image.open(io.BytesIO(shown.data)) as opened:
        assert opened.width == 960
    assert (
        client.get(f"/media/library/{asset.key}/r{asset.revision + 1}/960.webp").status_code == 404
    )
    assert client.get(f"/media/library/{asset.key}/r{asset.revision}/777.webp").status_code == 404

    # The press kit: the text, the picture with its credit inside, and the credits file.
    kit_url = f"/releases/{release.slug}/press-kit.zip"
    assert kit_url in public
    kit = client.get(kit_url)
    assert kit.status_code == 200 and kit.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(kit.data)) as archive:
        names = archive.namelist()
        assert {f"{release.slug}.txt", f"{release.slug}.html", "CREDITS.txt"} <= set(names)
        assert "images/harbour wall.jpg" in names
        credits = archive.read("CREDITS.txt").decode()
        assert "Credit: Photo: Jane Doe/Coastline Pictures" in credits
        assert "Copyright: ©" in credits and "Not for advertising." in credits
        picture = exiftool(archive.read("images/harbour wall.jpg"))
        assert picture["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"
    assert client.get(kit_url).data == kit.data  # built once, then served from storage

    # The mail shows the lead image (600 px, credit written in) and links the pictures.
    html, text = _mail(session, release.id, settings)
    assert f"/media/library/{asset.key}/email" in html and "Photo: Jane Doe" in html
    assert "PICTURES AND DOCUMENTS" in text and "Harbour wall at dawn (Photo: Jane Doe" in text
    assert client.get(f"/media/library/{asset.key}/email").status_code == 200

    # The checklist warns: rights end within the next days.
    confirm = client.get(f"{show}/send/confirm").get_data(as_text=True)
    assert "Image rights" in confirm and "rights end" in confirm

    # The rights end; the sweep hides the asset everywhere and records it.
    later = utcnow() + dt.timedelta(days=5)
    assert rights.expire_due(session, later) == [asset_id]
    session.commit()
    assert asset.rights_state is RightsState.EXPIRED
    assert "Photo: Jane Doe" not in client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert client.get(original_url).status_code == 404
    assert client.get(f"/media/library/{asset.key}/web").status_code == 404
    assert client.get(webp).status_code == 404
    page = client.get(f"/staff/media/{asset_id}").get_data(as_text=True)
    assert "Rights ended" in page and "Expired" in page
    html, text = _mail(session, release.id, settings)
    assert asset.key not in html and "PICTURES AND DOCUMENTS" not in text
    with zipfile.ZipFile(io.BytesIO(client.get(kit_url).data)) as archive:
        assert "images/harbour wall.jpg" not in archive.namelist()
        assert "Coastline" not in archive.read("CREDITS.txt").decode()

    # The send is blocked, whatever the override says.
    confirm = client.get(f"{show}/send/confirm").get_data(as_text=True)
    assert "its rights have ended" in confirm
    blocked = client.post(
        f"{show}/send/now",
        data={"csrf_token": csrf_token(client, f"{show}/send"), "confirmed": "yes"},
    )
    assert blocked.status_code == 303
    assert session.scalar(select(Send).where(Send.release_id == release.id)) is None
    assert "rights have ended" in client.get(f"{show}/send").get_data(as_text=True)


def test_library_pages_are_staff_only(client: FlaskClient) -> None:
    assert client.get("/staff/media/").status_code in (302, 303)
    assert client.get("/media/library/" + "0" * 24 + "/web").status_code == 404


def test_media_page_offers_fact_sheets_and_pictures_while_their_rights_last(
    client: FlaskClient, session: Session, settings: Settings, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    f.organisation(session, settings)
    session.commit()
    assert "Nothing here yet" in client.get("/media").get_data(as_text=True)
    response = _upload(client, title="Spokesperson Morwenna Pike", media_page="spokespeople")
    assert response.status_code == 303
    sheet = client.post(
        "/staff/media/new",
        data={
            "csrf_token": csrf_token(client, "/staff/media/new"),
            "file": (io.BytesIO(b"%PDF-1.4 facts"), "facts.pdf"),
            "title": "Fact sheet 2026",
            "copyright_holder": "Harbour Light Foundation",
            "licence": "own",
            "media_page": "fact_sheets",
        },
        content_type="multipart/form-data",
    )
    assert sheet.status_code == 303
    page = client.get("/media").get_data(as_text=True)
    assert "Spokespeople" in page and "Fact sheets" in page
    assert "Photo: Jane Doe/Coastline Pictures" in page
    portrait = session.scalar(select(MediaAsset).where(MediaAsset.title.like("Spokesperson%")))
    assert portrait is not None
    # In no release, yet public: it is on the media page.
    assert client.get(f"/media/library/{portrait.key}/original").status_code == 200
    assert client.get(f"/media/library/{portrait.key}/r1/480.webp").status_code == 200
    rights.expire_due(session, utcnow() + dt.timedelta(days=5))
    session.commit()
    page = client.get("/media").get_data(as_text=True)
    assert "Spokesperson Morwenna Pike" not in page and "Fact sheet 2026" in page
    assert client.get(f"/media/library/{portrait.key}/original").status_code == 404


@pytest.mark.usefixtures("settings")
def test_gallery_follows_the_release_edit_rules(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    assert _upload(client).status_code == 303
    asset = session.scalar(select(MediaAsset).order_by(MediaAsset.id.desc()))
    assert asset is not None
    release = f.release(session, photo=False, attachments=False)
    release.status = ReleaseStatus.APPROVED
    session.commit()
    show = f"/staff/releases/{release.id}"
    token = csrf_token(client, "/staff/media/new")
    refused = client.post(f"{show}/gallery/add", data={"csrf_token": token, "asset_id": asset.id})
    assert refused.status_code == 403  # press officers edit drafts only
    release.status = ReleaseStatus.DRAFT
    session.commit()
    added = client.post(f"{show}/gallery/add", data={"csrf_token": token, "asset_id": asset.id})
    assert added.status_code == 303


def test_embargoed_library_files_go_through_the_journalists_room(
    app: Flask, client: FlaskClient, session: Session, settings: Settings
) -> None:
    from distributor.embargo import tokens
    from distributor.storage import MediaStorage
    from tests.support.embargo import embargoed_world
    from tests.support.media import add_asset

    world = embargoed_world(session, settings, requires_terms=False)
    storage: MediaStorage = app.extensions["distributor.media_storage"]
    asset = add_asset(session, storage, title="Sea wall at night")
    services.add_to_release(
        session, world.release, asset, as_lead=False, actor_id=None, now=utcnow()
    )
    session.commit()
    room = f"/embargo/{tokens.room_token(settings, world.release.id, world.alice.id)}"
    url = f"{room}/library/{asset.key}/original"
    assert client.get(url).status_code == 303  # not entered yet: the room's front door
    assert client.get(f"/media/library/{asset.key}/original").status_code == 404  # not public
    client.post(f"{room}/enter", data={"csrf_token": csrf_token(client, room)})
    assert "Sea wall at night" in client.get(room).get_data(as_text=True)
    got = client.get(url)
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    tags = exiftool(got.data)
    assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"
    # The embargoed mail links the file through the recipient's room, never publicly.
    _, text = _mail(session, world.release.id, settings)
    assert f"/library/{asset.key}/original" in text
    assert f"/media/library/{asset.key}" not in text
