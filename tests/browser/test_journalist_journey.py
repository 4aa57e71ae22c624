"""A journalist subscribes, confirms from the mail in the dev inbox, changes beats, leaves.

Real parts throughout: a werkzeug server on loopback, Chromium through Playwright, the
confirmation mail rendered by the service and sent over SMTP to the in-process dev inbox.
Set SCREENSHOT_DIR to keep phone and desktop screenshots of the public pages.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import threading
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from werkzeug.serving import make_server

from distributor.app import create_app
from distributor.audience import consent
from distributor.audience.models import (
    Beat,
    ConfirmationRequest,
    Journalist,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from distributor.audience.services import address_hash
from distributor.db import Database, after_commit
from distributor.devinbox.models import DevMessage
from distributor.devinbox.server import make_controller
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import SMTPTransport, parse_smtp_urls
from distributor.settings import Settings
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


def _both_widths(page: Any, name: str) -> None:
    for label, width in (("phone", 390), ("desktop", 1280)):
        page.set_viewport_size({"width": width, "height": 900})
        # Nothing overflows sideways on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        _shot(page, f"{name}-{label}")


def test_journalist_subscribes_confirms_changes_beats_and_unsubscribes(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("chromium") is not None, "Chromium is not installed")
    from playwright.sync_api import sync_playwright

    run = uuid.uuid4().hex[:6]
    address = f"rhiannon.{run}@example.org"
    port, smtp_port = free_port(), free_port()
    app_settings = Settings(
        **{
            **settings.__dict__,
            "public_base_url": f"http://127.0.0.1:{port}",
            "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
        }
    )
    with live_db.session() as s:
        climate = Beat(name="Climate", slug=f"climate-{run}", description="Heat and floods")
        fish = Beat(name="Fisheries", slug=f"fisheries-{run}", description="Quotas and boats")
        housing = Beat(name="Housing", slug=f"housing-{run}", description="Rents and homes")
        s.add_all([climate, fish, housing])
        s.commit()
        beat_ids = {b.slug.split("-")[0]: b.id for b in (climate, fish, housing)}

    # The web request queues the confirmation after commit; here the test plays the worker.
    queued: list[int] = []
    monkeypatch.setattr(
        consent,
        "enqueue_after_commit",
        lambda session, task, *args: after_commit(session, lambda: queued.append(args[0])),
    )
    app = create_app(app_settings, db=live_db)
    server = make_server("127.0.0.1", port, app, threaded=True)
    server_thread = threading.Thread(target=server.serve_forever, daemon=True)
    inbox = make_controller(live_db, "127.0.0.1", smtp_port)
    inbox.start()
    server_thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            # 1. The public subscribe page, with a beat preselected by a link.
            page.goto(f"{base}/subscribe?beat=fisheries-{run}")
            assert page.locator(f"input[value='{beat_ids['fisheries']}']").is_checked()
            _both_widths(page, "subscribe")
            page.set_viewport_size({"width": 1280, "height": 900})
            page.fill("input[name=email]", address)
            page.fill("input[name=name]", "Rhiannon Test")
            climate_box = page.locator(f"input[value='{beat_ids['climate']}']")
            page.click(f"label[for='{climate_box.get_attribute('id')}']")
            page.click("input[type=submit]")
            page.wait_for_selector("text=Check your inbox")
            _shot(page, "check-inbox-desktop")

            # 2. The worker's job: render and send the mail over SMTP to the dev inbox.
            assert len(queued) == 1
            assert consent.deliver_confirmation(
                live_db,
                queued[0],
                settings=app_settings,
                renderer=EmailRenderer(),
                transport=SMTPTransport(parse_smtp_urls(app_settings.smtp_url)[0]),
            )
            with live_db.session() as s:
                raw = s.scalars(
                    select(DevMessage.raw).where(DevMessage.rcpt_to.contains(address))
                ).one()
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            assert message["Subject"].startswith("Confirm your subscription")
            text = message.get_body(preferencelist=("plain",))
            assert text is not None
            link = re.search(rf"{re.escape(base)}/subscribe/confirm/\S+", text.get_content())
            assert link, text.get_content()

            # 3. Opening the link shows a button and changes nothing; the button confirms.
            page.goto(link.group(0))
            page.wait_for_selector("text=Confirm your subscription")
            with live_db.session() as s:
                j = s.scalars(select(Journalist).where(Journalist.email == address)).one()
                assert {x.status for x in j.subscriptions} == {SubscriptionStatus.PENDING}
            _shot(page, "confirm-desktop")
            page.click("text=Confirm my subscription")
            page.wait_for_selector("text=You are subscribed")
            with live_db.session() as s:
                j = s.scalars(select(Journalist).where(Journalist.email == address)).one()
                assert {x.beat_id: x.status for x in j.subscriptions} == {
                    beat_ids["climate"]: SubscriptionStatus.CONFIRMED,
                    beat_ids["fisheries"]: SubscriptionStatus.CONFIRMED,
                }
                assert all(x.consent_text_version for x in j.subscriptions)

            # 4. Preference centre: drop Climate, add Housing, switch to the daily digest.
            page.click("text=Open my preferences")
            page.wait_for_selector("h1:has-text('Your preferences')")
            _both_widths(page, "preferences")
            page.set_viewport_size({"width": 1280, "height": 900})
            for beat in ("climate", "housing"):
                box_id = page.locator(f"input[value='{beat_ids[beat]}']").get_attribute("id")
                page.click(f"label[for='{box_id}']")
            page.check("input[value=daily_digest]")
            page.click("text=Save my choices")
            page.wait_for_selector("text=Your choices are saved")
            with live_db.session() as s:
                j = s.scalars(select(Journalist).where(Journalist.email == address)).one()
                status = {x.beat_id: x.status for x in j.subscriptions}
                assert status == {
                    beat_ids["climate"]: SubscriptionStatus.UNSUBSCRIBED,
                    beat_ids["fisheries"]: SubscriptionStatus.CONFIRMED,
                    beat_ids["housing"]: SubscriptionStatus.CONFIRMED,
                }
                assert j.delivery_mode.value == "daily_digest"

            # 5. Unsubscribe from everything, effective at once.
            page.click("text=Unsubscribe from everything")
            page.wait_for_selector("text=You are unsubscribed")
            _shot(page, "unsubscribed-phone")
            with live_db.session() as s:
                j = s.scalars(select(Journalist).where(Journalist.email == address)).one()
                assert {x.status for x in j.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
                entry = s.scalars(
                    select(Suppression).where(Suppression.address_hash == address_hash(address))
                ).one()
                assert entry.reason == SuppressionReason.UNSUBSCRIBED_ALL
            browser.close()
    finally:
        server.shutdown()
        inbox.stop()
        with live_db.session() as s:
            s.execute(delete(DevMessage).where(DevMessage.rcpt_to.contains(address)))
            s.execute(delete(Suppression).where(Suppression.address_hash == address_hash(address)))
            s.execute(
                delete(ConfirmationRequest).where(
                    ConfirmationRequest.address_hash == address_hash(address)
                )
            )
            s.execute(delete(Journalist).where(Journalist.email == address))
            s.execute(delete(Beat).where(Beat.slug.like(f"%-{run}")))
            s.commit()


def test_embedded_form_works_inside_another_sites_iframe(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only /subscribe/embed may be framed by another origin, and its POST works there."""
    need(shutil.which("chromium") is not None, "Chromium is not installed")
    import functools
    import http.server

    from playwright.sync_api import sync_playwright

    run = uuid.uuid4().hex[:6]
    address = f"framed.{run}@example.org"
    port, other_port = free_port(), free_port()
    with live_db.session() as s:
        beat = Beat(name="Embedded beat", slug=f"embedded-{run}", description="For the iframe")
        s.add(beat)
        s.commit()
    queued: list[int] = []
    monkeypatch.setattr(
        consent,
        "enqueue_after_commit",
        lambda session, task, *args: after_commit(session, lambda: queued.append(args[0])),
    )
    app = create_app(
        Settings(**{**settings.__dict__, "public_base_url": f"http://127.0.0.1:{port}"}),
        db=live_db,
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    (tmp_path / "outlet.html").write_text(
        "<h1>An outlet's site</h1>"
        f'<iframe id="embed" src="http://127.0.0.1:{port}/subscribe/embed" '
        'style="width:420px;height:700px;border:0"></iframe>'
        f'<iframe id="page" src="http://127.0.0.1:{port}/subscribe"></iframe>'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    outlet = http.server.ThreadingHTTPServer(("127.0.0.1", other_port), handler)
    for target in (server.serve_forever, outlet.serve_forever):
        threading.Thread(target=target, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            # "localhost" vs "127.0.0.1": a different origin, as another site would be.
            page.goto(f"http://localhost:{other_port}/outlet.html")
            frame = page.frame_locator("#embed")
            frame.locator("input[name=email]").fill(address)
            frame.locator(".beat-list label", has_text="Embedded beat").click()
            frame.locator("input[type=submit]").click()
            frame.locator("text=Check your inbox").wait_for()
            _shot(page, "embed-in-another-site")
            # The full page refuses to be framed (X-Frame-Options: SAMEORIGIN).
            framed = [f for f in page.frames if f.url.endswith("/subscribe")]
            assert not framed or "Get our press releases" not in framed[0].content()
            browser.close()
        assert len(queued) == 1
    finally:
        server.shutdown()
        outlet.shutdown()
        with live_db.session() as s:
            s.execute(
                delete(ConfirmationRequest).where(
                    ConfirmationRequest.address_hash == address_hash(address)
                )
            )
            s.execute(delete(Journalist).where(Journalist.email == address))
            s.execute(delete(Beat).where(Beat.slug == f"embedded-{run}"))
            s.commit()
