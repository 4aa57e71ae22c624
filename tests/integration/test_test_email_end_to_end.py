"""A test email travels web -> broker (Redis) -> real worker -> SMTP -> dev inbox."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from distributor.accounts.models import Role, User
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database
from distributor.devinbox.models import DevMessage
from distributor.devinbox.server import make_controller
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support.forms import csrf_token
from tests.support.services import free_port
from tests.support.smtp import SMTPSink
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration


def _admin(db: Database) -> User:
    with db.session() as session, session.begin():
        return create_user(
            session,
            email="ops@example.org",
            name="Ops Admin",
            password=TEST_PASSWORD,
            role=Role.ADMIN,
        )


def test_test_email_reaches_a_real_smtp_server(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with SMTPSink() as sink:
        app_settings = Settings(**{**settings.__dict__, "redis_url": broker, "smtp_url": sink.url})
        env = service_env(
            DATABASE_URL=settings.database_url,
            REDIS_URL=broker,
            SMTP_URL=sink.url,
            DATA_DIR=settings.data_dir,
        )
        admin = _admin(live_db)
        app = create_app(app_settings, db=live_db)
        client = app.test_client()
        with celery_worker(env):
            token = csrf_token(client, "/login")
            client.post(
                "/login",
                data={"email": admin.email, "password": TEST_PASSWORD, "csrf_token": token},
            )
            token = csrf_token(client, "/staff/test-email")
            response = client.post(
                "/staff/test-email", data={"to_address": "desk@example.org", "csrf_token": token}
            )
            assert response.status_code == 302
            [received] = sink.wait_for(1, timeout=60)
    assert received.rcpt_tos == ["desk@example.org"]
    message = received.message
    assert "Test email from" in message["Subject"]
    assert message["Message-ID"] and message["Date"]
    assert "It works." in message.get_body(("html",)).get_content()
    assert "It works." in message.get_body(("plain",)).get_content()


def test_test_email_shows_up_in_the_dev_inbox(
    settings: Settings, live_db: Database, broker: str
) -> None:
    port = free_port()
    controller = make_controller(live_db, "127.0.0.1", port)
    controller.start()
    try:
        smtp_url = f"smtp://127.0.0.1:{port}"
        app_settings = Settings(**{**settings.__dict__, "redis_url": broker, "smtp_url": smtp_url})
        env = service_env(
            DATABASE_URL=settings.database_url,
            REDIS_URL=broker,
            SMTP_URL=smtp_url,
            DATA_DIR=settings.data_dir,
        )
        admin = _admin(live_db)
        app = create_app(app_settings, db=live_db)
        client = app.test_client()
        with celery_worker(env):
            token = csrf_token(client, "/login")
            client.post(
                "/login",
                data={"email": admin.email, "password": TEST_PASSWORD, "csrf_token": token},
            )
            token = csrf_token(client, "/staff/test-email")
            client.post("/staff/test-email", data={"to_address": admin.email, "csrf_token": token})
            deadline = time.monotonic() + 60
            message_id = None
            while time.monotonic() < deadline and message_id is None:
                with live_db.session() as session:
                    message_id = session.scalar(select(DevMessage.id))
                time.sleep(0.2)
        assert message_id is not None, "the dev inbox received nothing"
        listing = client.get("/dev/inbox/").get_data(as_text=True)
        assert "Test email from" in listing
        page = client.get(f"/dev/inbox/{message_id}")
        assert page.status_code == 200
        html = client.get(f"/dev/inbox/{message_id}/html")
        assert "It works." in html.get_data(as_text=True)
        assert "sandbox" in html.headers["Content-Security-Policy"]
    finally:
        controller.stop()
