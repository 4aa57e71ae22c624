"""A press office's day in a real browser (issue 11): the editor confirms a send with red
checklist items and tests it on a colleague; the press officer is offered only what they can
use; the dev inbox records no tracking and the mail asks no third party for anything; the
admin edits the organisation; the newsroom home works without JavaScript and an embargoed
permalink says when it lifts.

``SCREENSHOT_DIR=/some/dir`` keeps a screenshot of every page visited."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import inspect, select
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database, utcnow
from distributor.delivery import mail_tasks
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.rendering import Recipient, compile_release
from distributor.devinbox.services import store_message
from distributor.mail.transport import InMemoryTransport
from distributor.organisation.services import ensure_organisation
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support import delivery_factories as f
from tests.support.releases import image_bytes
from tests.support.services import free_port, need

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class EmptyDns:
    """DNS that answers with no SPF or DMARC record: the checklist shows them as "Fix"."""

    def txt(self, name: str) -> list[str]:
        return []


def _shot(page: Any, name: str) -> None:
    target = os.environ.get("SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def _login(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_a_press_office_day(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    need(shutil.which("chromium") is not None, "Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    run = uuid.uuid4().hex[:6]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_settings = Settings(**{**settings.__dict__, "public_base_url": base})

    emails = {role: f"{role.value}.{run}@day.example" for role in Role}
    with live_db.session() as session, session.begin():
        names = {Role.ADMIN: "Ada Admin", Role.EDITOR: "Eddie Editor", Role.PRESS_OFFICER: "Pat"}
        for role, email in emails.items():
            create_user(session, email=email, name=names[role], password=TEST_PASSWORD, role=role)
        f.organisation(session, app_settings, tracking=True)
        embargoed = f.release(
            session,
            title=f"Tide barrier contract awarded {run}",
            embargo_until=utcnow() + dt.timedelta(days=2),
            photo=False,
        )
        embargoed.status = ReleaseStatus.APPROVED
        embargoed.published_at = None
        f.audience(session, embargoed, count=4, digest=1)
        journalist = f.journalist(session, name="Jane Tracked")
        recipient = Recipient(
            delivery_id=1,
            journalist_id=journalist.id,
            email=journalist.email,
            name="Jane Tracked",
            verp_token=f"tok{run}",
            matched_beats="Coastal towns",
            is_tracking_allowed=True,
        )
        envelope, _, raw = compile_release(session, embargoed.id, app_settings).message_for(
            recipient
        )
        stored = store_message(session, mail_from=envelope, rcpt_to=[journalist.email], raw=raw)
        release_id, slug, stored_id = embargoed.id, embargoed.slug, stored.id

    app = create_app(app_settings, db=live_db, mail_transport=InMemoryTransport())
    app.extensions["distributor.dns_resolver"] = EmptyDns()
    # The test plays the broker: tasks are recorded, not sent (the app binds them first).
    queued: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        engine_tasks.dispatch_send, "delay", lambda *a: queued.append(("dispatch", a))
    )
    monkeypatch.setattr(
        mail_tasks.send_release_test, "delay", lambda *a: queued.append(("test", a))
    )
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    logo = tmp_path / "logo.png"
    logo.write_bytes(image_bytes(360, 96))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                # -- the editor: send page -> confirmation -> override -> send -------------
                editor = browser.new_page(viewport={"width": 1280, "height": 900})
                _login(editor, base, emails[Role.EDITOR])
                editor.goto(f"{base}/staff/releases/{release_id}/send")
                _shot(editor, "send-page")
                editor.get_by_role("link", name="Send now to 4…").click()
                expect(editor.get_by_role("heading", name="Confirm the send")).to_be_visible()
                summary = editor.get_by_test_id("confirm-summary")
                expect(summary).to_contain_text("4 journalists get it by email")
                expect(summary).to_contain_text("1 in their next daily digest")
                expect(editor.get_by_test_id("confirm-embargo")).to_contain_text("embargoed until")
                red = editor.get_by_test_id("confirm-red")
                expect(red).to_contain_text("SPF")
                expect(red).to_contain_text("DMARC")
                _shot(editor, "confirm-send")

                # A test to a colleague first.
                colleague = editor.get_by_test_id("colleague-test")
                colleague.get_by_label("Pat").check()
                colleague.get_by_role("button", name="Send test to the ticked").click()
                expect(editor.locator(".flash-success")).to_contain_text(emails[Role.PRESS_OFFICER])
                assert sorted(a[1] for kind, a in queued if kind == "test") == sorted(
                    [
                        app_user_id(live_db, emails[Role.EDITOR]),
                        app_user_id(live_db, emails[Role.PRESS_OFFICER]),
                    ]
                )

                # The browser will not submit without the override tick.
                send_button = editor.get_by_role("button", name="Send now to 4 journalists")
                send_button.click()
                assert editor.url.endswith("/send/confirm")
                assert not [k for k, _ in queued if k == "dispatch"]
                editor.get_by_test_id("override").check()
                send_button.click()
                expect(editor.locator(".flash-success")).to_contain_text("Sending started")
                assert [k for k, _ in queued if k == "dispatch"] == ["dispatch"]
                _shot(editor, "send-started")

                # -- dev inbox: no pixel, no tracked link, nothing from a third party --------
                requests: list[str] = []
                editor.on("request", lambda r: requests.append(r.url))
                editor.goto(f"{base}/dev/inbox/{stored_id}")
                frame = editor.frame_locator("iframe.mail-preview")
                expect(frame.get_by_text("View in browser")).to_be_visible()
                editor.wait_for_load_state("networkidle")
                _shot(editor, "dev-inbox-mail")
                assert requests, "the page made no requests at all?"
                assert not [u for u in requests if "/t/o/" in u or "/t/c/" in u], requests
                hosts = {urlsplit(u).netloc for u in requests if u.startswith("http")}
                assert hosts == {f"127.0.0.1:{port}"}, hosts
                editor.close()

                # -- the press officer is not offered what they cannot use -----------------
                officer = browser.new_page(viewport={"width": 1280, "height": 900})
                _login(officer, base, emails[Role.PRESS_OFFICER])
                officer.goto(f"{base}/staff/releases/{release_id}")
                nav = officer.get_by_role("navigation", name="Staff")
                expect(nav.get_by_role("link", name="Releases")).to_be_visible()
                for hidden in ("Suppressions", "Dev inbox"):
                    expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
                expect(officer.get_by_role("link", name="Send", exact=True)).to_have_count(0)
                expect(officer.get_by_role("link", name="Audience and checklist")).to_be_visible()
                _shot(officer, "release-as-press-officer")
                officer.close()

                # -- the admin edits the organisation ---------------------------------------
                admin = browser.new_page(viewport={"width": 1280, "height": 900})
                _login(admin, base, emails[Role.ADMIN])
                admin.get_by_role("navigation", name="Staff").get_by_role(
                    "link", name="Organisation"
                ).click()
                admin.fill("input[name=tagline]", "Independent coastal reporting, since 2009.")
                admin.fill("textarea[name=boilerplate]", "We fund reporting on harbours.")
                admin.set_input_files("input[name=logo]", str(logo))
                admin.get_by_role("button", name="Save organisation").click()
                expect(admin.locator(".flash-success")).to_contain_text("Organisation saved")
                admin.fill("input[name=person-name]", "Maeve Okafor")
                admin.fill("input[name=person-title]", "Director of communications")
                admin.fill("input[name=person-phone]", "+44 1632 960 555")
                admin.get_by_role("button", name="Add spokesperson").click()
                expect(admin.locator(".flash-success")).to_contain_text("Maeve Okafor added")
                _shot(admin, "organisation-page")
                admin.close()

                # -- the public newsroom, without JavaScript --------------------------------
                public_context = browser.new_context(
                    java_script_enabled=False, viewport={"width": 1280, "height": 900}
                )
                public = public_context.new_page()
                public.goto(base + "/")
                expect(public.get_by_test_id("subscribe-cta")).to_be_visible()
                expect(public.get_by_text("Maeve Okafor")).to_be_visible()
                expect(public.locator(".site-logo img")).to_be_visible()
                _shot(public, "newsroom-home")
                public.get_by_role("navigation", name="Kinds of release").get_by_role(
                    "link", name="Press release"
                ).click()
                assert "kind=press-release" in public.url
                expect(
                    public.get_by_role("navigation", name="Kinds of release").locator(
                        "[aria-current=page]"
                    )
                ).to_have_text("Press release")
                public.goto(f"{base}/releases/{slug}")
                expect(public.get_by_test_id("embargo-page")).to_contain_text(
                    "This release is under embargo until"
                )
                assert "Tide barrier contract" not in public.content()
                _shot(public, "embargo-page")
                public.set_viewport_size({"width": 390, "height": 844})
                public.goto(base + "/")
                assert public.evaluate("document.documentElement.scrollWidth") <= 390
                _shot(public, "newsroom-home-phone")
                public_context.close()
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
    with live_db.session() as session:
        org = ensure_organisation(session, app_settings)
        assert org.tagline == "Independent coastal reporting, since 2009."
        assert inspect(org).persistent


def app_user_id(db: Database, email: str) -> int:
    from distributor.accounts.models import User

    with db.session() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
        assert user_id is not None
        return user_id


WORD_HTML = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{}</style>'
    '</head><body><h1>Marsh restored</h1><p class="MsoNormal"><b>Forty hectares</b> flood '
    'again, <i>twice a day</i>.<o:p></o:p></p><p class="MsoListParagraph">·  Birds return</p>'
    '<p class="MsoListParagraph">·  Salt returns</p><p class="MsoNormal">'
    '<a href="https://estuary.example/plan">The plan</a>'
    '<img src="file:///C:/Users/x/image001.png"></p></body></html>'
)
DOCS_HTML = (
    '<meta charset="utf-8"><b style="font-weight:normal;" id="docs-internal-guid-1234">'
    '<p dir="ltr"><span style="font-weight:700;">Tide gauge</span><span> data is </span>'
    '<span style="font-style:italic;">open</span></p></b>'
)


def _paste(page: Any, html: str) -> None:
    page.evaluate(
        """html => {
            const area = document.getElementById('body_markdown');
            area.focus();
            const data = new DataTransfer();
            data.setData('text/html', html);
            data.setData('text/plain', 'plain fallback');
            area.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
        }""",
        html,
    )


def test_compose_editor_dashboard_and_notification_choices(
    settings: Settings, live_db: Database
) -> None:
    need(shutil.which("chromium") is not None, "Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    from tests.support.releases import kind as release_kind

    run = uuid.uuid4().hex[:6]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_settings = Settings(**{**settings.__dict__, "public_base_url": base})
    officer_email = f"officer.{run}@day.example"
    with live_db.session() as session, session.begin():
        create_user(
            session, email=officer_email, name="Olu Officer", password=TEST_PASSWORD,
            role=Role.PRESS_OFFICER,
        )  # fmt: skip
        f.organisation(session, app_settings)
        release_kind(session)
    app = create_app(app_settings, db=live_db, mail_transport=InMemoryTransport())
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                _login(page, base, officer_email)
                expect(page.get_by_test_id("review-queue")).to_contain_text(
                    "Nothing waits for review"
                )
                _shot(page, "dashboard-empty")
                page.goto(f"{base}/staff/releases/new")
                page.select_option("select[name=kind_id]", label="Press release")
                page.fill("input[name=title]", f"Marsh restored {run}")
                # Paste from Word: headings, bold, italic, lists and links survive, nothing else.
                _paste(page, WORD_HTML)
                value = page.input_value("textarea[name=body_markdown]")
                assert "## Marsh restored" in value
                assert "**Forty hectares**" in value and "*twice a day*" in value
                assert "- Birds return" in value and "- Salt returns" in value
                assert "[The plan](https://estuary.example/plan)" in value
                assert "image001" not in value and "MsoNormal" not in value
                page.wait_for_selector("#live-preview strong:has-text('Forty hectares')")
                # Paste from Google Docs.
                page.fill("textarea[name=body_markdown]", "")
                _paste(page, DOCS_HTML)
                assert page.input_value("textarea[name=body_markdown]") == (
                    "**Tide gauge** data is *open*"
                )
                # The toolbar wraps the selection; plain Markdown typed by hand still works.
                page.fill("textarea[name=body_markdown]", "Quiet words")
                page.locator("textarea[name=body_markdown]").select_text()
                page.get_by_role("button", name="B", exact=True).click()
                assert page.input_value("textarea[name=body_markdown]") == "**Quiet words**"
                page.fill("textarea[name=body_markdown]", "Typed **by hand**.\n\n## A heading")
                page.wait_for_selector("#live-preview h2:has-text('A heading')")
                _shot(page, "compose-body-preview")
                # The whole newsroom page and the whole mail, as typed.
                page.get_by_role("tab", name="Newsroom page").click()
                frame = page.frame_locator("#page-frame")
                expect(frame.locator("h1")).to_have_text(f"Marsh restored {run}")
                _shot(page, "compose-page-preview")
                page.get_by_role("tab", name="Mail").click()
                mail = page.frame_locator("#mail-frame")
                expect(mail.get_by_text("View in browser")).to_be_visible()
                expect(mail.get_by_text("A heading")).to_be_visible()
                _shot(page, "compose-mail-preview")
                page.get_by_role("button", name="Save draft").click()
                page.wait_for_selector("text=Draft saved.")
                page.get_by_role("button", name="Submit for review").click()
                page.wait_for_selector("text=Release is now in review.")
                page.get_by_role("link", name="Home").first.click()
                expect(page.get_by_test_id("review-queue")).to_contain_text(f"Marsh restored {run}")
                _shot(page, "dashboard")
                # Notification choices: press officers are not offered the reviewers' one.
                page.get_by_role("link", name="Notifications").click()
                boxes = page.locator("input[name=kind]")
                expect(boxes).to_have_count(4)
                page.get_by_label("My release is approved").uncheck()
                page.get_by_role("button", name="Save").click()
                expect(page.locator(".flash-success")).to_contain_text("saved")
                expect(page.get_by_label("My release is approved")).not_to_be_checked()
                _shot(page, "notification-choices")
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
