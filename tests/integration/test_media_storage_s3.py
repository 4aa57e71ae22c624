"""Every stored file behind one storage: a newsroom served from moto's S3 server over HTTP,
with no file under DATA_DIR (so several web machines can serve it), and the backfill command
that copies an existing local folder into the object store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.db import Database, utcnow
from distributor.mail.transport import InMemoryTransport
from distributor.media import services as media_services
from distributor.organisation import services as org_services
from distributor.organisation.media import logo_key, process_logo
from distributor.releases import media
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from distributor.storage import LocalStorage, MediaStorage, storage_from_url
from tests.support import delivery_factories as f
from tests.support.media import (
    add_asset,
    exercise_storage,
    exiftool,
    moto_s3_server,
    photo_with_exif,
)
from tests.support.releases import image_bytes

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% a fact sheet\n"


@pytest.fixture()
def s3_url() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        import boto3

        bucket = f"newsroom-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ).create_bucket(Bucket=bucket)
        yield f"s3://test:test@{bucket}/files?endpoint={endpoint}&region=us-east-1"


def test_s3_storage_over_http_against_a_local_server(s3_url: str) -> None:
    exercise_storage(storage_from_url(s3_url, "unused"))


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_newsroom_downloads_and_press_kit_come_from_s3_with_no_local_files(
    settings: Settings, db: Database, session: Session, s3_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "web-machine"
    data_dir.mkdir()
    web_settings = dataclasses.replace(settings, media_storage_url=s3_url, data_dir=str(data_dir))
    app: Flask = create_app(web_settings, db=db, mail_transport=InMemoryTransport())
    storage: MediaStorage = app.extensions["distributor.media_storage"]

    with app.app_context():
        org = f.organisation(session, settings)
        org.logo_key = process_logo(io.BytesIO(image_bytes(400, 200, "PNG")), storage)
        person = org_services.add_spokesperson(
            session,
            web_settings,
            name="Ada Spokes",
            title="Press officer",
            email="ada@example.org",
            phone="",
            storage=storage,
            photo=io.BytesIO(image_bytes(800, 800)),
        )
        release = f.release(session, photo=False, attachments=False)
        release.status = ReleaseStatus.APPROVED
        release.published_at = utcnow() - dt.timedelta(minutes=5)
        release.photo_alt = "The harbour"
        release.photo_credit = "Jo Marsh"
        media.set_photo(session, release, io.BytesIO(image_bytes(1400, 900)), storage)
        attachment = media.add_attachment(session, release, io.BytesIO(PDF), "facts.pdf", storage)
        asset = add_asset(session, storage)
        media_services.add_to_release(
            session, release, asset, as_lead=False, actor_id=None, now=utcnow()
        )
        session.commit()

    client = app.test_client()
    page = client.get(f"/releases/{release.slug}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)

    photo_url = f"/media/photos/{release.photo_key}-1200.jpg"
    assert photo_url in html
    photo = client.get(photo_url)
    assert photo.status_code == 200 and photo.data[:3] == b"\xff\xd8\xff"
    assert photo.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (
        client.get(photo_url, headers={"If-None-Match": photo.headers["ETag"]}).status_code == 304
    )

    attachment_url = f"/releases/{release.slug}/attachments/{attachment.id}/facts.pdf"
    assert attachment_url in html
    assert client.get(attachment_url).data == PDF

    logo = client.get(f"/media/logos/{org.logo_key}.png")
    assert logo.status_code == 200 and logo.data[:8] == b"\x89PNG\r\n\x1a\n"
    home = client.get("/").get_data(as_text=True)
    spokes_url = f"/media/photos/{person.photo_key}-600.jpg"
    assert spokes_url in home
    assert client.get(spokes_url).status_code == 200  # public without a login

    original = client.get(f"/media/library/{asset.key}/original")
    assert original.status_code == 200
    tags = exiftool(original.data)
    assert tags.get("XMP-photoshop:Credit") == "Photo: Jane Doe/Coastline Pictures"
    webp = re.search(rf"/media/library/{asset.key}/r\d+/\d+\.webp", html)
    assert webp is not None and client.get(webp.group(0)).status_code == 200

    kit = client.get(f"/releases/{release.slug}/press-kit.zip")
    assert kit.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(kit.data)).namelist()
    assert "CREDITS.txt" in names and f"{release.slug}.html" in names
    assert "documents/facts.pdf" in names and any(n.startswith("images/") for n in names)

    # Nothing of it was written on this web machine: all of it is in the object store.
    assert _files_under(data_dir / "media") == []
    assert storage.exists(logo_key(org.logo_key or ""))
    assert any(storage.keys("presskits/"))
    # A second web machine with only the same MEDIA_STORAGE_URL serves the same photo.
    other = create_app(
        dataclasses.replace(web_settings, data_dir=str(tmp_path / "other")),
        db=db,
        mail_transport=InMemoryTransport(),
    )
    assert other.test_client().get(photo_url).data == photo.data


def test_import_files_copies_a_local_folder_into_the_object_store(
    s3_url: str, tmp_path: Path
) -> None:

    from distributor.storage import import_local_files

    local = LocalStorage(tmp_path / "media")
    local.put("photos/abc-1200.jpg", b"jpeg", "image/jpeg")
    local.put("attachments/0f.pdf", PDF, "application/pdf")
    local.put("logos/ab.png", b"png", "image/png")
    # The library's files under their earlier folder keep their keys, without it.
    (tmp_path / "media" / "library" / "originals").mkdir(parents=True)
    (tmp_path / "media" / "library" / "originals" / "k1.jpg").write_bytes(photo_with_exif())
    (tmp_path / "media" / "photos" / ".tmp-half").write_bytes(b"partial")
    target = storage_from_url(s3_url, "unused")
    assert import_local_files(tmp_path / "media", target) == (4, 0)
    assert target.read("photos/abc-1200.jpg") == b"jpeg"
    assert target.read("attachments/0f.pdf") == PDF
    assert target.exists("originals/k1.jpg")
    assert sorted(target.keys("photos/")) == ["photos/abc-1200.jpg"]  # no half-written file
    assert import_local_files(tmp_path / "media", target) == (0, 4)  # safe to run again


def test_the_import_files_command_backfills_the_configured_store(
    settings: Settings, db: Database, s3_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "old-machine"
    LocalStorage(data_dir / "media").put("logos/0123456789abcdef01234567.png", b"png", "image/png")
    app = create_app(
        dataclasses.replace(settings, media_storage_url=s3_url, data_dir=str(data_dir)),
        db=db,
        mail_transport=InMemoryTransport(),
    )
    result = app.test_cli_runner().invoke(args=["media", "import-files"])
    assert result.exit_code == 0, result.output
    assert "1 file(s) copied" in result.output
    assert (
        app.extensions["distributor.media_storage"].read("logos/0123456789abcdef01234567.png")
        == b"png"
    )
    assert app.test_client().get("/media/logos/0123456789abcdef01234567.png").data == b"png"
