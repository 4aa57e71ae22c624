"""The media library, end to end in Chromium (issue 13).

A press officer uploads two pictures with their credit and licence, builds a release from them
(one as the lead image), and the newsroom shows the gallery; a journalist downloads an original
that carries its credit and licence in XMP (read back with exiftool). The agency picture's
licence ends: the editor's send is blocked, and after the sweep the newsroom, the feed, the
download and the press kit no longer offer it, and what was built from it leaves the storage.
The other picture, used in the release, is deleted only once the press officer confirms; its
page keeps the history. Screenshots go to /tmp/media-*.png.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database, utcnow
from distributor.delivery.checklist import DnsUnavailable
from distributor.delivery.models import Send
from distributor.mail.transport import InMemoryTransport
from distributor.media import downloads as media_downloads
from distributor.media import rights as media_rights
from distributor.media.models import MediaAsset
from distributor.releases.models import (
    Release,
    ReleaseStatus,
)
from distributor.settings import Settings
from distributor.storage import LocalStorage
from tests.conftest import TEST_PASSWORD
from tests.support import delivery_factories as f
from tests.support.media import exiftool, photo_with_exif
from tests.support.services import free_port, need

pytestmark = pytest.mark.browser

DOMAIN = "media-journey.example"
TITLE = "Flood wall finished a month early"
AGENCY_PICTURE = "Harbour wall at dawn (agency)"
OWN_PICTURE = "Volunteers on the new wall"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class OfflineResolver:
    def txt(self, name: str) -> list[str]:
        raise DnsUnavailable("no network in tests")


@pytest.fixture()
def server(
    settings: Settings, live_db: Database, tmp_path: Path
) -> Iterator[tuple[str, LocalStorage]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_settings = Settings(**{**settings.__dict__, "public_base_url": base})
    storage = LocalStorage(tmp_path / "library")
    app = create_app(
        app_settings, db=live_db, mail_transport=InMemoryTransport(), media_storage=storage
    )
    app.extensions["distributor.dns_resolver"] = OfflineResolver()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, storage
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def _seed(db: Database, settings: Settings) -> Release:
    with db.session() as session, session.begin():
        f.organisation(session, settings)
        for role, name in ((Role.PRESS_OFFICER, "pat"), (Role.EDITOR, "eddie")):
            create_user(
                session, email=f"{name}@{DOMAIN}", name=name.title(), password=TEST_PASSWORD,
                role=role,
            )  # fmt: skip
        # A draft: press officers build drafts; editors approve them.
        release = f.release(session, title=TITLE, photo=False, attachments=False)
        release.published_at = None
    return release


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _upload(page, base: str, path: Path, title: str, **rights: str) -> None:
    page.goto(f"{base}/staff/media/new")
    page.set_input_files("input[name=file]", str(path))
    page.fill("input[name=title]", title)
    page.fill("textarea[name=caption]", "The new flood wall at Portmere harbour.")
    page.fill("textarea[name=alt_text]", "A concrete wall along a harbour at sunrise")
    page.fill("input[name=creator]", rights.get("creator", "Jane Doe"))
    page.fill("input[name=agency]", rights.get("agency", ""))
    page.fill("input[name=copyright_holder]", rights.get("holder", "Harbour Light Foundation"))
    page.select_option("select[name=licence]", rights.get("licence", "own"))
    if "until" in rights:
        page.fill("input[name=rights_until]", rights["until"])
    page.fill("input[name=tags]", "flood, harbour")
    page.click("button:has-text('Upload')")
    page.wait_for_selector("#credit-line")


# The whole journey (two uploads, a send, a sweep, a deletion) runs past the suite's default
# five minutes on a loaded 2-core machine.
@pytest.mark.timeout(600)
def test_media_library_journey(
    server, live_db: Database, settings: Settings, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    need(Path(chromium).exists(), "Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    base, storage = server
    release = _seed(live_db, settings)
    agency_file = tmp_path / "dawn.jpg"
    agency_file.write_bytes(photo_with_exif())
    own_file = tmp_path / "volunteers.png"
    own_file.write_bytes(photo_with_exif(1200, 800, fmt="PNG"))
    soon = (utcnow() + dt.timedelta(days=2)).date().isoformat()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # -- the press officer builds the release from the library ----------------------
            officer = browser.new_page()
            _login(officer, base, f"pat@{DOMAIN}")
            officer.click("nav >> text=Media library")
            _upload(
                officer, base, agency_file, AGENCY_PICTURE, agency="Coastline Pictures",
                holder="Coastline Pictures Ltd", licence="licensed_until", until=soon,
            )  # fmt: skip
            assert officer.inner_text("#credit-line") == "Photo: Jane Doe/Coastline Pictures"
            officer.select_option("select[name=use-release_id]", label=TITLE)
            officer.check("input[name=use-as_lead]")
            officer.click("button:has-text('Use in this release')")
            officer.wait_for_selector("#gallery >> text=Lead image")
            _upload(officer, base, own_file, OWN_PICTURE)
            officer.goto(f"{base}/staff/releases/{release.id}")
            officer.select_option("#gallery-asset", label=f"{OWN_PICTURE} — Photo: Jane Doe")
            officer.click("#gallery button:has-text('Add to the gallery')")
            officer.wait_for_selector(f"#gallery >> text={OWN_PICTURE}")
            officer.screenshot(path="/tmp/media-release-gallery.png", full_page=True)
            officer.goto(f"{base}/staff/media/?rights=expiring")
            assert AGENCY_PICTURE in officer.content() and OWN_PICTURE not in officer.content()

            # The editor approves it (that journey has its own test: test_release_journey).
            with live_db.session() as session, session.begin():
                session.execute(
                    update(Release)
                    .where(Release.id == release.id)
                    .values(
                        status=ReleaseStatus.APPROVED,
                        published_at=utcnow() - dt.timedelta(minutes=1),
                    )
                )

            # -- a journalist on the newsroom: gallery, credit, original with its XMP ---------
            reader = browser.new_page()
            reader.goto(f"{base}/releases/{release.slug}")
            gallery = reader.locator("#gallery")
            assert gallery.locator(".gallery-card").count() == 2
            assert "Photo: Jane Doe/Coastline Pictures" in gallery.inner_text()
            reader.screenshot(path="/tmp/media-newsroom.png", full_page=True)
            # Chromium takes the WebP from the <picture>; the JPEG is the fallback's.
            reader.wait_for_function("document.querySelector('.lead-photo img').complete")
            shown = reader.evaluate("document.querySelector('.lead-photo img').currentSrc")
            assert shown.endswith(".webp"), shown
            picture = reader.request.get(shown)
            assert picture.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert picture.headers["content-type"] == "image/webp"
            card = gallery.locator(".gallery-card", has_text=AGENCY_PICTURE)
            with reader.expect_download() as info:
                card.locator("a:has-text('Original')").click()
            downloaded = Path(info.value.path())
            tags = exiftool(downloaded.read_bytes())
            assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"
            assert "Coastline Pictures Ltd" in str(tags["XMP-dc:Rights"])
            assert "Not to be used after" in str(tags["XMP-xmpRights:UsageTerms"])
            assert not any(k.startswith("GPS") for k in tags)
            original_url = card.locator("a:has-text('Original')").get_attribute("href")
            with reader.expect_download() as info:
                reader.click("a.press-kit")
            with zipfile.ZipFile(info.value.path()) as archive:
                assert "images/dawn.jpg" in archive.namelist()
                assert "images/volunteers.png" in archive.namelist()
                credits = archive.read("CREDITS.txt").decode()
                assert "Credit: Photo: Jane Doe/Coastline Pictures" in credits
                assert f"{release.slug}.txt" in archive.namelist()
                assert f"{release.slug}.html" in archive.namelist()
            assert original_url is not None
            agency_key = original_url.split("/")[3]
            feed = reader.request.get(f"{base}/feed.atom").text()
            assert f"/media/library/{agency_key}/email" in feed

            # -- the agency licence ends: the send is blocked ---------------------------------
            with live_db.session() as session, session.begin():
                session.execute(
                    update(MediaAsset)
                    .where(MediaAsset.title == AGENCY_PICTURE)
                    .values(rights_until=utcnow() - dt.timedelta(minutes=1))
                )
            editor = browser.new_page()
            _login(editor, base, f"eddie@{DOMAIN}")
            editor.goto(f"{base}/staff/releases/{release.id}/send/confirm")
            red = editor.locator("[data-testid=confirm-red]")
            assert (
                "Image rights" in red.inner_text() and "its rights have ended" in red.inner_text()
            )
            override = editor.locator("[data-testid=override]")
            if override.count():
                override.check()
            editor.click("form[data-once] button[type=submit]")
            editor.wait_for_selector("text=rights have ended")
            editor.screenshot(path="/tmp/media-send-blocked.png", full_page=True)
            with live_db.session() as session:
                assert session.scalar(select(Send).where(Send.release_id == release.id)) is None

            # -- the sweep: the newsroom and the download no longer offer it ------------------
            with live_db.session() as session, session.begin():
                assert len(media_rights.expire_due(session, utcnow())) == 1
            reader.goto(f"{base}/releases/{release.slug}")
            assert reader.locator("#gallery .gallery-card").count() == 1
            assert AGENCY_PICTURE not in reader.content()
            gone = reader.request.get(f"{base}{original_url}")
            assert gone.status == 404
            officer.goto(f"{base}/staff/media/?rights=expired")
            officer.click(f"text={AGENCY_PICTURE}")
            history = officer.inner_text("#asset-history")
            assert "Expired" in history and "Used" in history and "Uploaded" in history
            officer.screenshot(path="/tmp/media-asset-history.png", full_page=True)
            # The sweep's clean-up: what was built from it (its downloads with the credit
            # written in, its page pictures, the cached press kit) leaves the storage; the
            # next press kit and the feed no longer carry it.
            assert any(storage.keys(f"downloads/{agency_key}/"))
            with live_db.session() as session:
                assert media_downloads.sweep_built_files(session, storage, utcnow()) >= 2
            assert not any(storage.keys(f"downloads/{agency_key}/"))
            assert not any(storage.keys(f"renditions/{agency_key}/"))
            assert agency_key not in reader.request.get(f"{base}/feed.atom").text()
            with reader.expect_download() as info:
                reader.click("a.press-kit")
            with zipfile.ZipFile(info.value.path()) as archive:
                assert "images/dawn.jpg" not in archive.namelist()
                assert "Coastline" not in archive.read("CREDITS.txt").decode()
            assert len(list(storage.keys("presskits/"))) == 1  # the stale kit went

            # -- deleting an asset used in a release: it asks first, then its files go --------
            with live_db.session() as session:
                own = session.scalar(select(MediaAsset).where(MediaAsset.title == OWN_PICTURE))
                assert own is not None
                own_id, own_key = own.id, own.key
            officer.goto(f"{base}/staff/media/{own_id}")
            officer.click("#delete-asset button[type=submit]")
            officer.wait_for_selector("text=is used in 1 release(s)")
            assert storage.exists(f"originals/{own_key}.png")
            officer.check("input[name=delete-confirmed]")
            officer.click("#delete-asset button[type=submit]")
            officer.wait_for_selector("#asset-deleted")
            assert "Deleted" in officer.inner_text("#asset-history")
            assert not storage.exists(f"originals/{own_key}.png")
            assert not any(storage.keys(f"renditions/{own_key}/"))
            assert not any(storage.keys("presskits/"))
            reader.goto(f"{base}/releases/{release.slug}")
            assert reader.locator("#gallery .gallery-card").count() == 0
            officer.screenshot(path="/tmp/media-asset-deleted.png", full_page=True)
        finally:
            browser.close()
