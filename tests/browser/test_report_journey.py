"""An admin reads a sent release's report and the sending-health dashboard, charts included.

Real parts: committed data built through the tracking services, a werkzeug server thread on
loopback, Debian's Chromium through Playwright. Set SCREENSHOT_DIR to keep screenshots.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database
from distributor.reports.sample import seed_sent_release
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support.services import free_port, need

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def seeded(live_db: Database) -> tuple[Database, int, str]:
    """A committed sent release with engagement, and an admin (``live_db`` removes them)."""
    run = uuid.uuid4().hex[:6]
    email = f"admin.{run}@reports.example"
    with live_db.session() as session, session.begin():
        create_user(session, email=email, name="Ada Admin", password=TEST_PASSWORD, role=Role.ADMIN)
        release = seed_sent_release(session, recipients=60, prefix=f"browser-{run}")
        release_id = release.id
    return live_db, release_id, email


def _shot(page: Any, name: str) -> None:
    target = os.environ.get("SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def test_admin_reads_a_release_report_with_its_charts(
    settings: Settings, seeded: tuple[Database, int, str]
) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    need(Path(chromium).exists(), "Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    db, release_id, email = seeded
    port = free_port()
    app_settings = Settings(**{**settings.__dict__, "public_base_url": f"http://127.0.0.1:{port}"})
    app = create_app(app_settings, db=db)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/login")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", TEST_PASSWORD)
                page.click("button[type=submit], input[type=submit]")
                page.wait_for_url(lambda url: "/login" not in url)

                page.get_by_role("link", name="Reports").first.click()
                expect(page.get_by_role("heading", name="Sending health")).to_be_visible()
                expect(page.locator("svg.chart.bar-chart").first).to_be_visible()
                expect(page.locator("svg.chart line.threshold").first).to_be_attached()
                _shot(page, "reports-dashboard")

                page.get_by_role("link", name="Coastal erosion doubled").first.click()
                page.wait_for_url(f"{base}/staff/reports/releases/{release_id}")
                expect(page.get_by_role("heading", level=1)).to_contain_text("Coastal erosion")
                charts = page.locator("svg.chart")
                assert charts.count() >= 5
                for index in range(charts.count()):
                    expect(charts.nth(index)).to_be_visible()
                expect(page.locator("svg.chart polyline.series").first).to_be_visible()
                expect(page.locator("svg.chart rect.bar").first).to_be_visible()
                # Each chart names itself for screen readers, and the figures are in tables.
                assert page.locator("svg.chart[role=img] title").count() >= 5
                expect(page.get_by_role("heading", name="Clicks per link")).to_be_visible()
                expect(page.get_by_role("rowheader", name="Portmere Gazette")).to_be_visible()
                _shot(page, "reports-release")

                with page.expect_download() as download:
                    page.get_by_role("link", name="Download CSV").nth(1).click()
                assert download.value.suggested_filename.endswith(".csv")

                page.set_viewport_size({"width": 390, "height": 900})
                assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
                _shot(page, "reports-release-phone")
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
