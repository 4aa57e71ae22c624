"""Release mail read back from a real SMTP server: every header STANDARDS.md lists.

Staff press "Send now" in the web app; real worker processes (Redis broker) render with
``compile_release`` and deliver to an aiosmtpd server on loopback. A staff test send takes
the same road.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.utils import parseaddr, parsedate_to_datetime

import pytest
from sqlalchemy import select

from distributor.accounts.models import Role
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.audience.tokens import load_unsubscribe_token
from distributor.db import Database
from distributor.delivery.models import Delivery
from distributor.mail import verp
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token
from tests.support.smtp import Received, SMTPSink
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration

RECIPIENTS = 5


def _setup(db: Database, settings: Settings) -> tuple[int, str]:
    with db.session() as session, session.begin():
        f.organisation(session, settings)
        release = f.release(
            session, title="Ferry \u201cNautilus\u201d returns to Portmere", attachments=False
        )
        release.status = ReleaseStatus.APPROVED
        f.audience(session, release, count=RECIPIENTS)
        create_user(
            session,
            email="editor@example.org",
            name="Eddie Editor",
            password=TEST_PASSWORD,
            role=Role.EDITOR,
        )
        return release.id, "editor@example.org"


def _check_headers(received: Received, settings: Settings, verp_tokens: dict[str, str]) -> None:
    (rcpt,) = received.rcpt_tos
    delivery_id = int(verp_tokens[rcpt])
    # Header tokens are single-purpose MACs of the delivery id (distributor/mail/verp.py).
    token = verp.make(settings, verp.BOUNCE, verp.DELIVERY, delivery_id)
    assert received.mail_from == f"bounces+{token}@{settings.bounce_domain}"
    unsubscribe_token = verp.make(settings, verp.UNSUBSCRIBE, verp.DELIVERY, delivery_id)
    m = received.message
    assert re.fullmatch(rf"<[^<>@\s]+@{re.escape(settings.from_domain)}>", m["Message-ID"])
    assert parsedate_to_datetime(m["Date"]).tzinfo is not None
    assert parseaddr(m["From"]) == (settings.org_name, settings.mail_from)
    assert m["Reply-To"] == settings.press_email
    assert [a.addr_spec for a in m["To"].addresses] == [rcpt]
    assert m["Subject"] == "Ferry \u201cNautilus\u201d returns to Portmere"
    https_url, mailto = re.findall(r"<([^>]+)>", m["List-Unsubscribe"])
    assert https_url.startswith(f"{settings.public_base_url}/unsubscribe/")
    assert (
        mailto
        == f"mailto:unsubscribe+{unsubscribe_token}@{settings.bounce_domain}?subject=unsubscribe"
    )
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert m["List-Id"] and m["Precedence"] == "bulk" and m["Feedback-ID"]
    assert m["Auto-Submitted"] is None
    assert m.get_content_type() == "multipart/alternative"
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert "Portmere's sea wall will be raised by 1.2 metres" in text
    assert https_url in text and https_url in html
    assert settings.org_postal_address in text


def _wait_for(
    sink: SMTPSink, wanted: Callable[[Received], bool], count: int, timeout: float
) -> list[Received]:
    """The first ``count`` mails the sink received that ``wanted`` picks, waiting for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        picked = [r for r in sink.received if wanted(r)]
        if len(picked) >= count:
            return picked[:count]
        time.sleep(0.05)
    raise AssertionError(f"expected {count} such messages, got {len(picked)} in {timeout}s")


def test_sent_release_carries_every_header_when_read_back(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with SMTPSink() as sink:
        app_settings = Settings(**{**settings.__dict__, "redis_url": broker, "smtp_url": sink.url})
        env = service_env(
            DATABASE_URL=settings.database_url,
            REDIS_URL=broker,
            SMTP_URL=sink.url,
            DATA_DIR=settings.data_dir,
            SECRET_KEY=settings.secret_key,
            PUBLIC_BASE_URL=settings.public_base_url,
        )
        release_id, editor_email = _setup(live_db, settings)
        app = create_app(app_settings, db=live_db)
        client = app.test_client()
        with celery_worker(env):
            token = csrf_token(client, "/login")
            client.post(
                "/login",
                data={"email": editor_email, "password": TEST_PASSWORD, "csrf_token": token},
            )
            send_page = f"/staff/releases/{release_id}/send"
            token = csrf_token(client, send_page)
            # As the confirmation page posts it (with its override, should DNS answer "Fix").
            confirm = client.get(f"{send_page}/confirm").get_data(as_text=True)
            override = re.search(r'name="override" value="([0-9a-f]+)"', confirm)
            response = client.post(
                f"{send_page}/now",
                data={
                    "csrf_token": token,
                    "confirmed": "yes",
                    "override": override.group(1) if override else "",
                },
            )
            assert response.status_code == 303
            # The editor also gets workflow notifications (the send started, its first
            # figures): the journalists' mails are those not addressed to the editor.
            received = _wait_for(
                sink, lambda r: r.rcpt_tos != [editor_email], RECIPIENTS, timeout=90
            )

            token = csrf_token(client, f"/staff/releases/{release_id}/email-preview")
            client.post(
                f"/staff/releases/{release_id}/email-preview/test-send",
                data={"csrf_token": token},
            )
            subject = "Ferry \u201cNautilus\u201d returns to Portmere"
            (test_mail,) = _wait_for(
                sink,
                lambda r: r.rcpt_tos == [editor_email] and r.message["Subject"] == subject,
                1,
                timeout=60,
            )

    with live_db.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.release_id == release_id)).all()
        verp_tokens = {d.email or "": str(d.id) for d in rows}
        journalist_of = {d.email: d.journalist_id for d in rows}
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(verp_tokens)
    for message in received:
        _check_headers(message, settings, verp_tokens)
        url = re.findall(r"<([^>]+)>", message.message["List-Unsubscribe"])[0]
        journalist_id = load_unsubscribe_token(settings, url.rsplit("/", 1)[1])
        assert journalist_id == journalist_of[message.rcpt_tos[0]]

    assert test_mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
