"""A press officer writes a release with a photo and submits it; an editor approves it with
an embargo; it reaches the public newsroom and the Atom feed only after the lift."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.audience.models import Beat
from distributor.db import Database, utcnow
from distributor.mail.transport import InMemoryTransport
from distributor.releases.models import Release, ReleaseStatus
from distributor.releases.tasks import lift_embargoes
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support.releases import image_bytes
from tests.support.services import free_port, need

pytestmark = pytest.mark.browser

TITLE = "Volunteers switch on the estuary tide gauges"
SHOTS = Path("/tmp")


@pytest.fixture()
def server(settings: Settings, live_db: Database) -> Iterator[tuple[str, object]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_settings = Settings(**{**settings.__dict__, "public_base_url": base})
    app = create_app(app_settings, db=live_db, mail_transport=InMemoryTransport())
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, app
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def _seed(db: Database) -> None:
    with db.session() as session, session.begin():
        for role, name in ((Role.PRESS_OFFICER, "pat"), (Role.EDITOR, "eddie")):
            create_user(
                session,
                email=f"{name}@journey.example",
                name=name.title(),
                password=TEST_PASSWORD,
                role=role,
            )
        session.add(Beat(slug="journey-climate", name="Climate"))


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_release_journey(server, live_db: Database, settings: Settings, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    need(Path(chromium).exists(), "Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    base, app = server
    _seed(live_db)
    photo = tmp_path / "gauge.png"
    photo.write_bytes(image_bytes(1600, 1000))

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            # -- the press officer writes and submits -----------------------------------------
            officer = browser.new_page()
            _login(officer, base, "pat@journey.example")
            officer.click("nav >> text=Releases")
            officer.click("text=Write a release")
            officer.select_option("select[name=kind_id]", label="Press release")
            officer.fill("input[name=title]", TITLE)
            officer.fill("textarea[name=summary]", "Twelve gauges now report every five minutes.")
            officer.fill(
                "textarea[name=body_markdown]",
                "The network went live **this week**.\n\n> Now we get forty minutes' warning.",
            )
            # The live preview shows the sanitised rendering while typing.
            officer.wait_for_selector("#live-preview strong:has-text('this week')")
            officer.get_by_label("Climate", exact=True).check()
            officer.set_input_files("input[name=photo]", str(photo))
            officer.fill("input[name=photo_alt]", "A tide gauge on a post in the estuary")
            officer.fill("input[name=photo_credit]", "Ines Carrow")
            officer.click("button:has-text('Save draft')")
            officer.wait_for_selector("text=Draft saved.")
            officer.click("button:has-text('Submit for review')")
            officer.wait_for_selector("text=Release is now in review.")
            release_url = officer.url
            officer.close()

            # -- the editor approves with an embargo tomorrow ---------------------------------
            editor = browser.new_page()
            _login(editor, base, "eddie@journey.example")
            editor.goto(release_url)
            assert editor.is_visible("text=Draft → In review")
            lift_local = (utcnow() + dt.timedelta(days=1)).astimezone(settings.tz)
            # One form, one comment box, a button per move (issue 11).
            review = editor.locator("form.workflow-action")
            assert review.count() == 1 and review.locator("textarea[name=comment]").count() == 1
            review.locator("input[name=embargo_until]").fill(lift_local.strftime("%Y-%m-%dT%H:%M"))
            review.locator("button[value=approved]").click()
            editor.wait_for_selector("text=Release is now approved.")
            assert editor.is_visible("text=Embargoed until")

            # -- not public before the lift ----------------------------------------------------
            public = browser.new_page()
            public.goto(base + "/")
            assert TITLE not in public.content()
            feed = public.request.get(base + "/feed.atom").text()
            assert TITLE not in feed

            # -- the embargo passes; the periodic sweep publishes it --------------------------
            with live_db.session() as session, session.begin():
                release = session.scalar(select(Release).where(Release.title == TITLE))
                assert release is not None
                assert release.status is ReleaseStatus.APPROVED and release.published_at is None
                release.embargo_until = utcnow() - dt.timedelta(minutes=1)
            public.goto(base + "/")
            assert TITLE not in public.content()  # the lift time alone publishes nothing
            with app.app_context():
                assert lift_embargoes() == 1

            public.goto(base + "/")
            assert public.is_visible(f"text={TITLE}")
            assert "Photo: Ines Carrow" in public.content()
            assert TITLE in public.request.get(base + "/feed.atom").text()
            public.set_viewport_size({"width": 1280, "height": 900})
            public.screenshot(path=str(SHOTS / "newsroom-desktop.png"))
            public.click(f"text={TITLE}")
            assert public.locator("h1").inner_text() == TITLE
            assert public.is_visible("img[alt='A tide gauge on a post in the estuary']")
            public.screenshot(path=str(SHOTS / "release-desktop.png"))
            public.set_viewport_size({"width": 390, "height": 844})
            public.screenshot(path=str(SHOTS / "release-phone.png"))
            public.goto(base + "/")
            public.screenshot(path=str(SHOTS / "newsroom-phone.png"))
        finally:
            browser.close()
