"""Health check, dev inbox, rate-limited login and the staff CLI."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.accounts.services import authenticate, find_user_by_email
from distributor.app import create_app
from distributor.db import Database
from distributor.devinbox.services import store_message
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD
from tests.support.forms import csrf_token


def test_healthz_reports_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


def test_healthz_says_unavailable_when_the_broker_is_down(settings: Settings, db: Database) -> None:
    broken = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    app = create_app(broken, db=db, mail_transport=InMemoryTransport())
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"]["ok"] is False


def _raw_message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "news@harbourlight.example"
    msg["To"] = "desk@example.org"
    msg["Subject"] = subject
    msg.set_content("plain words")
    msg.add_alternative("<p>rich <b>words</b><script>alert(1)</script></p>", subtype="html")
    return msg.as_bytes()


def test_dev_inbox_lists_shows_and_empties(
    client: FlaskClient, session: Session, logged_in
) -> None:
    stored = store_message(
        session,
        mail_from="news@x.example",
        rcpt_to=["desk@example.org"],
        raw=_raw_message("Hello desk"),
    )
    session.commit()
    logged_in(Role.ADMIN)
    assert "Hello desk" in client.get("/dev/inbox/").get_data(as_text=True)
    page = client.get(f"/dev/inbox/{stored.id}").get_data(as_text=True)
    assert "plain words" in page
    html = client.get(f"/dev/inbox/{stored.id}/html")
    assert "rich <b>words</b>" in html.get_data(as_text=True)
    # The mail's own HTML runs with no script and no same-origin rights.
    assert html.headers["Content-Security-Policy"].startswith("sandbox")
    raw = client.get(f"/dev/inbox/{stored.id}/raw")
    assert raw.mimetype == "message/rfc822"
    token = csrf_token(client, "/dev/inbox/")
    client.post("/dev/inbox/clear", data={"csrf_token": token})
    assert client.get(f"/dev/inbox/{stored.id}").status_code == 404


def test_dev_inbox_is_gone_when_disabled(settings: Settings, db: Database, make_user) -> None:
    app = create_app(
        dataclasses.replace(settings, dev_inbox_enabled=False),
        db=db,
        mail_transport=InMemoryTransport(),
    )
    client = app.test_client()
    user = make_user(Role.ADMIN)
    token = csrf_token(client, "/login")
    client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert client.get("/dev/inbox/").status_code == 404


def test_login_is_rate_limited(settings: Settings, db: Database, make_user) -> None:
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, login_rate_limit="3 per minute"
    )
    app = create_app(limited, db=db, mail_transport=InMemoryTransport())
    client = app.test_client()
    user = make_user(Role.ADMIN)
    statuses = []
    for _ in range(5):
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", data={"email": user.email, "password": "wrong", "csrf_token": token}
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]


def test_admin_creates_and_disables_users_in_the_ui(
    client: FlaskClient, session: Session, logged_in
) -> None:
    logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/users")
    response = client.post(
        "/staff/users",
        data={
            "name": "Pat Press",
            "email": "Pat@Example.org",
            "role": "press_officer",
            "password": "a-long-password",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    user = find_user_by_email(session, "pat@example.org")
    assert user is not None and user.role is Role.PRESS_OFFICER
    token = csrf_token(client, "/staff/users")
    client.post(f"/staff/users/{user.id}/active", data={"csrf_token": token})
    session.refresh(user)
    assert user.is_active is False


def test_cli_creates_disables_and_enables_users(app, session: Session) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "cli@example.org",
            "--name",
            "Cli User",
            "--role",
            "editor",
            "--password",
            "cli-password-123",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "created cli@example.org as Editor" in result.output
    assert authenticate(session, "cli@example.org", "cli-password-123") is not None

    result = runner.invoke(args=["users", "disable", "cli@example.org"])
    assert "disabled" in result.output
    session.expire_all()
    assert authenticate(session, "cli@example.org", "cli-password-123") is None

    result = runner.invoke(args=["users", "enable", "cli@example.org"])
    assert "active" in result.output
    duplicate = runner.invoke(
        args=["users", "create", "--email", "CLI@example.org", "--password", "cli-password-123"]
    )
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = runner.invoke(
        args=["users", "create", "--email", "x@example.org", "--password", "short"]
    )
    assert short.exit_code != 0 and "at least 10" in short.output
