"""An editor sends a release from the browser and watches progress update live.

A werkzeug server on loopback with a committed database, Chromium through Playwright. The
workers are not running: the test moves delivery rows itself, as workers would, and checks
that the page's poller shows it without a reload. Set SCREENSHOT_DIR to keep screenshots.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.mail.transport import InMemoryTransport
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support import delivery_factories as f
from tests.support.services import free_port, need

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _shot(page: Any, name: str) -> None:
    target = os.environ.get("SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def test_editor_sends_and_watches_progress(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("chromium") is not None, "Chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    with live_db.session() as session, session.begin():
        f.organisation(session, settings)
        release = f.release(session, photo=False)
        release.status = ReleaseStatus.APPROVED
        f.audience(session, release, count=3)
        create_user(
            session, email="ed@example.org", name="Ed", password=TEST_PASSWORD, role=Role.EDITOR
        )
        release_id = release.id

    port = free_port()
    app = create_app(settings, db=live_db, mail_transport=InMemoryTransport())
    dispatched: list[int] = []  # no worker here: record the hand-off instead
    monkeypatch.setattr(engine_tasks.dispatch_send, "delay", lambda send_id: dispatched.append(1))

    class Offline:
        def txt(self, name: str) -> list[str]:
            from distributor.delivery.checklist import DnsUnavailable

            raise DnsUnavailable("no network in tests")

    app.extensions["distributor.dns_resolver"] = Offline()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/login")
            page.fill("input[name=email]", "ed@example.org")
            page.fill("input[name=password]", TEST_PASSWORD)
            page.click("[type=submit]")
            page.goto(f"{base}/staff/releases/{release_id}/send")
            assert page.inner_text("[data-testid=audience-total]") == "3"
            _shot(page, "send-before")

            page.click("text=Send now to 3")
            # The confirmation restates the send before anything goes out (issue 11).
            page.wait_for_selector("text=Confirm the send")
            assert dispatched == []
            page.click("button:has-text('Send now to 3 journalists')")
            page.wait_for_selector("text=Sending started")
            assert page.inner_text("[data-field=status]") == "running"
            assert dispatched == [1]

            # A worker delivers two messages; the poller shows it without a reload.
            with live_db.session() as session, session.begin():
                ids = session.scalars(
                    select(Delivery.id).where(Delivery.release_id == release_id).limit(2)
                ).all()
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids))
                    .values(status=DeliveryStatus.SENT)
                    .execution_options(synchronize_session=False)
                )
            # A locator assertion, not wait_for_function: the page's CSP refuses eval.
            expect(page.locator("[data-count=sent]")).to_have_text("2", timeout=15_000)
            assert page.inner_text("[data-field=done]") == "2"
            width = page.eval_on_selector("[data-field=bar]", "e => e.style.width")
            assert width.startswith("66.")
            _shot(page, "send-progress")

            # A double click on Pause sends one request and leaves the send paused.
            page.dblclick("button:has-text('Pause')")  # the page also explains pausing
            page.wait_for_selector("button:has-text('Resume')")
            browser.close()
        with live_db.session() as session:
            sends = session.scalars(select(Send).where(Send.release_id == release_id)).all()
            assert [s.status for s in sends] == [SendStatus.PAUSED]
            assert (
                session.scalar(
                    select(func.count(Delivery.id)).where(Delivery.release_id == release_id)
                )
                == 3
            )
    finally:
        server.shutdown()
        thread.join(timeout=5)
