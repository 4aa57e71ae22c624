"""The embargo room, end to end in Chromium.

An editor schedules an embargoed release that requires the embargo terms; the sweep starts
the send and a real batch delivers it over SMTP to a sink on loopback. Journalist A accepts
the terms and opens the room; journalist B, on probation, was skipped; A's link shows
nothing in B's browser or anyone else's; no mail carries the staff preview token; at the
lift A's link leads to the public page. Screenshots go to /tmp/embargo-*.png.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from werkzeug.serving import make_server

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.audience.models import Beat, Journalist, Subscription
from distributor.db import Database, utcnow
from distributor.delivery import services as delivery_services
from distributor.delivery import tasks as engine_tasks
from distributor.delivery.models import Send
from distributor.delivery.ratelimit import rate_limiter_for
from distributor.delivery.sender import run_batch
from distributor.embargo import services as embargo
from distributor.embargo.models import Standing
from distributor.mail.transport import InMemoryTransport, parse_smtp_urls
from distributor.releases.media import add_attachment, set_photo
from distributor.releases.models import Release, ReleaseStatus, release_beats
from distributor.releases.tasks import lift_embargoes
from distributor.settings import Settings
from distributor.storage import storage_for
from tests.conftest import TEST_PASSWORD
from tests.support import delivery_factories as f
from tests.support.embargo import PDF, TERMS_BODY, TERMS_SUMMARY
from tests.support.releases import image_bytes
from tests.support.services import free_port, need
from tests.support.smtp import SMTPSink

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOMAIN = "embargo-room.example"
TITLE = "Harbour seals return to the estuary after forty years"
BODY_WORDS = "counted 212 seals"


def _seed(db: Database, settings: Settings) -> int:
    now = utcnow()
    with db.session() as session, session.begin():
        f.organisation(session, settings)
        create_user(
            session, email=f"eddie@{DOMAIN}", name="Eddie", password=TEST_PASSWORD,
            role=Role.EDITOR,
        )  # fmt: skip
        beat = Beat(slug=f"seals-{now.timestamp():.0f}", name="Wildlife")
        session.add(beat)
        session.flush()
        for who in ("alice", "bob"):
            j = Journalist(email=f"{who}@{DOMAIN}", email_normalized=f"{who}@{DOMAIN}",
                           name=who.title())  # fmt: skip
            session.add(j)
            session.flush()
            session.add(Subscription(journalist_id=j.id, beat_id=beat.id, status="confirmed"))
            if who == "bob":
                embargo.set_standing(
                    session, j.id, standing=Standing.PROBATION,
                    probation_until=now + dt.timedelta(days=60),
                    reason="Published the October report early", by=None, now=now,
                )  # fmt: skip
        embargo.publish_terms(session, summary=TERMS_SUMMARY, body=TERMS_BODY, by=None, now=now)
        release = f.release(session, title=TITLE, photo=False, attachments=False)
        release.body_html = f"<p>Volunteers {BODY_WORDS} on the sandbanks this week.</p>"
        release.body_markdown = f"Volunteers {BODY_WORDS} on the sandbanks this week."
        release.status = ReleaseStatus.APPROVED
        release.embargo_until = now + dt.timedelta(days=1)
        release.published_at = None
        session.execute(release_beats.insert().values(release_id=release.id, beat_id=beat.id))
        set_photo(session, release, io.BytesIO(image_bytes(1400, 900)), storage_for(settings))
        release.photo_alt = "Seals on a sandbank at low tide"
        add_attachment(session, release, io.BytesIO(PDF), "seal-count.pdf", storage_for(settings))
        return release.id


def _login(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _decoded(raw: bytes) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    return "\n".join(parts)


def test_embargo_room(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    need(Path(chromium).exists(), "Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    release_id = _seed(live_db, settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with SMTPSink() as sink:
        app_settings = Settings(
            **{**settings.__dict__, "public_base_url": base, "smtp_url": sink.url}
        )
        transport = InMemoryTransport()
        app = create_app(app_settings, db=live_db, mail_transport=transport)
        monkeypatch.setattr(engine_tasks.dispatch_send, "delay", lambda send_id: None)

        class Offline:
            def txt(self, name: str) -> list[str]:
                from distributor.delivery.checklist import DnsUnavailable

                raise DnsUnavailable("no network in tests")

        app.extensions["distributor.dns_resolver"] = Offline()
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    _journey(browser, base, app, app_settings, live_db, sink, transport, release_id)
                finally:
                    browser.close()
        finally:
            server.shutdown()
            thread.join(timeout=10)


def _journey(
    browser, base, app, settings: Settings, db: Database, sink: SMTPSink, transport, release_id
) -> None:
    # -- the editor asks for the terms and schedules the send -------------------------------------
    editor = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(editor, base, f"eddie@{DOMAIN}")
    editor.goto(f"{base}/staff/releases/{release_id}")
    editor.click("text=Embargo room")
    editor.check("input[name=requires_terms]")
    editor.click("button:has-text('Save options')")
    editor.wait_for_selector("text=Embargo options saved.")
    editor.goto(f"{base}/staff/releases/{release_id}/send")
    assert editor.inner_text("[data-testid=audience-total]") == "1"
    assert "1 on embargo probation" in editor.inner_text("#embargo-skipped")
    when = (utcnow() + dt.timedelta(minutes=5)).astimezone(settings.tz)
    editor.fill("#scheduled_for", when.strftime("%Y-%m-%dT%H:%M"))
    editor.click("button:has-text('Schedule')")
    # The confirmation restates the send first (issue 11); red checklist items need the tick.
    editor.wait_for_selector("text=Confirm the schedule")
    if editor.locator("[data-testid=override]").count():
        editor.check("[data-testid=override]")
    editor.click("button:has-text('Schedule for')")
    editor.wait_for_selector("text=Scheduled for")

    # -- the time comes: the sweep starts the send, a worker's batch delivers it ----------------
    with db.session() as session, session.begin():
        send = session.scalar(select(Send).where(Send.release_id == release_id))
        assert send is not None
        session.execute(update(Send).where(Send.id == send.id).values(scheduled_for=utcnow()))
        send_id = send.id
    with db.session() as session, session.begin():
        assert delivery_services.start_due_scheduled(session, send_id, utcnow())
    with app.app_context():
        run_batch(
            db, settings, send_id, limiter=rate_limiter_for(settings),
            relays=parse_smtp_urls(sink.url),
        )  # fmt: skip
    mails = sink.wait_for(1)
    assert [m.rcpt_tos for m in mails] == [[f"alice@{DOMAIN}"]]  # Bob, on probation: skipped
    with db.session() as session:
        release = session.get(Release, release_id)
        assert release is not None
        preview_token, slug = release.preview_token, release.slug
    for mail in [*mails, *(type("M", (), {"raw": m.message})() for m in transport.sent)]:
        assert preview_token.encode() not in mail.raw
        assert preview_token not in _decoded(mail.raw)
        assert "/preview/" not in _decoded(mail.raw)
    text = _decoded(mails[0].raw)
    assert BODY_WORDS not in text  # terms required: the summary and the link only
    assert TERMS_SUMMARY in text
    room_url = re.search(rf"{re.escape(base)}/embargo/[A-Za-z0-9_-]+", text)
    assert room_url is not None
    link = room_url.group(0)

    # -- journalist A accepts the terms and opens the room --------------------------------------
    alice_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    alice = alice_ctx.new_page()
    alice.goto(link)
    alice.wait_for_selector("[data-testid=embargo-terms]")
    assert BODY_WORDS not in alice.content()
    alice.check("input[name=accept]")
    alice.click("button:has-text('Accept and open the embargo room')")
    alice.wait_for_selector("[data-testid=embargo-room]")
    assert alice.locator("h1").inner_text() == TITLE
    assert BODY_WORDS in alice.content()
    alice.wait_for_function(
        "document.querySelector('.lead-photo img').naturalWidth > 0", timeout=10_000
    )
    alice.screenshot(path="/tmp/embargo-room.png", full_page=True)
    download_href = alice.get_attribute("a:has-text('seal-count.pdf')", "href")
    assert download_href is not None
    got = alice_ctx.request.get(base + download_href)
    assert got.status == 200 and got.body().startswith(b"%PDF")
    photo_href = alice.get_attribute(".lead-photo img", "src")

    # -- the same link in B's browser, or anyone else's, shows nothing --------------------------
    for name in ("bob", "someone"):
        other_ctx = browser.new_context()
        other = other_ctx.new_page()
        other.goto(link)
        other.wait_for_selector("[data-testid=embargo-other-browser]")
        assert BODY_WORDS not in other.content() and TITLE not in other.content()
        other.screenshot(path=f"/tmp/embargo-{name}.png")
        assert other_ctx.request.get(base + photo_href).status == 404
        pdf = other_ctx.request.get(base + download_href)
        assert not pdf.body().startswith(b"%PDF")
        other_ctx.close()

    # -- staff see who received it, accepted, opened and downloaded ------------------------------
    editor.goto(f"{base}/staff/releases/{release_id}/embargo")
    row = editor.locator(f"tr[data-journalist='alice@{DOMAIN}']")
    assert "v1" in row.inner_text() and "seal-count.pdf" in row.inner_text()
    assert f"bob@{DOMAIN}" not in editor.content()
    editor.screenshot(path="/tmp/embargo-staff.png", full_page=True)

    # -- the lift: published as before, and A's link now leads to the public page ---------------
    with db.session() as session, session.begin():
        session.execute(
            update(Release)
            .where(Release.id == release_id)
            .values(embargo_until=utcnow() - dt.timedelta(seconds=5))
        )
    with app.app_context():
        assert lift_embargoes() == 1
    alice.goto(link)
    alice.wait_for_url(f"{base}/releases/{slug}")
    assert alice.locator("h1").inner_text() == TITLE
    alice_ctx.close()
