"""Finding 11: password policy, password change, per-account throttle, TOTP, security events."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts import mfa, services
from distributor.accounts.models import Role, User
from distributor.accounts.passwords import check_password, is_breached
from distributor.app import create_app
from distributor.db import Database
from distributor.errors import ValidationFailed
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.conftest import TEST_PASSWORD, login
from tests.support.forms import csrf_token

STRONG = "tidal orchard lantern mosaic"


@pytest.mark.parametrize(
    "weak", [" " * 10, "password123", "qwertyuiop", "1234567890", "iloveyou12", "Harbour2026"]
)
def test_weak_and_breached_passwords_are_refused(session: Session, weak: str) -> None:
    with pytest.raises(ValidationFailed):
        check_password(weak)
    with pytest.raises(ValidationFailed):
        services.create_user(
            session, email="weak@example.org", name="Weak", password=weak, role=Role.EDITOR
        )


def test_breached_list_ships_offline_and_names_the_usual_suspects() -> None:
    assert is_breached("password") and is_breached("Dragon") and is_breached("letmein")
    assert not is_breached(STRONG)
    with pytest.raises(ValidationFailed, match="breach"):
        check_password("michael123")


def test_a_password_made_of_the_users_own_name_is_weak() -> None:
    with pytest.raises(ValidationFailed):
        check_password("eve.editor2026", user_inputs=["eve.editor@example.org", "Eve Editor"])
    check_password(STRONG, user_inputs=["eve.editor@example.org", "Eve Editor"])


def test_password_change_page_needs_the_current_password(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    user = make_user(Role.PRESS_OFFICER)
    login(client, user)
    token = csrf_token(client, "/account")
    refused = client.post(
        "/account",
        data={"csrf_token": token, "current": "wrong one", "new": STRONG, "confirm": STRONG},
    )
    assert b"current password is not right" in refused.data
    weak = client.post(
        "/account",
        data={
            "csrf_token": token,
            "current": TEST_PASSWORD,
            "new": "password1234",
            "confirm": "password1234",
        },
    )
    assert b"Password too weak" in weak.data or b"breach" in weak.data
    done = client.post(
        "/account",
        data={"csrf_token": token, "current": TEST_PASSWORD, "new": STRONG, "confirm": STRONG},
    )
    assert done.status_code == 302
    assert client.get("/staff/audience/journalists").status_code == 200  # this session stays
    session.expire_all()
    assert services.verify_password(user, STRONG)


@pytest.mark.usefixtures("session")
def test_per_account_lockout_whatever_the_address(
    app: Flask, make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user(Role.EDITOR)
    caplog.set_level(logging.WARNING, logger="distributor.security")
    for n in range(5):
        client = app.test_client()
        token = csrf_token(client, "/login")
        client.post(
            "/login",
            data={"email": user.email, "password": f"guess {n}", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
    client = app.test_client()
    token = csrf_token(client, "/login")
    right = client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert right.status_code == 200, "a locked account does not log in, even with its password"
    events = " ".join(r.getMessage() for r in caplog.records)
    assert "login_failed" in events and "account_locked" in events
    assert TEST_PASSWORD not in events and "guess" not in events


def _code(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(time.time()) + offset)


def test_totp_login_and_no_replay(
    app: Flask, make_user: Callable[..., User], session: Session
) -> None:
    user = make_user(Role.ADMIN)
    secret = mfa.new_secret()
    mfa.enable(session, user, secret, _code(secret, -30))
    session.commit()
    client = app.test_client()
    token = csrf_token(client, "/login")
    first = client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert first.headers["Location"].endswith("/login/code")
    assert client.get("/staff/audience/journalists").status_code == 302  # not logged in yet
    code_page = client.get("/login/code")
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', code_page.text)
    assert found
    token = found.group(1)
    used = client.post(
        "/login/code",
        data={"csrf_token": token, "code": _code(secret, -30)},
    )
    assert b"already used" in used.data  # the step enable() consumed
    ok = client.post("/login/code", data={"csrf_token": token, "code": _code(secret)})
    assert ok.status_code == 302
    assert client.get("/staff/audience/journalists").status_code == 200


@pytest.mark.usefixtures("session")
def test_admins_must_set_up_mfa_when_required(
    settings: Settings, db: Database, make_user: Callable[..., User]
) -> None:
    app = create_app(
        dataclasses.replace(settings, require_admin_mfa=True),
        db=db,
        mail_transport=InMemoryTransport(),
    )
    editor, admin = make_user(Role.EDITOR), make_user(Role.ADMIN)
    client = app.test_client()
    login(client, editor)
    assert client.get("/staff/audience/journalists").status_code == 200
    client = app.test_client()
    login(client, admin)
    blocked = client.get("/staff/users")
    assert blocked.status_code == 302 and blocked.headers["Location"].endswith(
        "/account/two-factor"
    )
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r"Key: <code>([A-Z2-7]+)</code>", page)
    assert secret
    token = csrf_token(client, "/account/two-factor")
    client.post("/account/two-factor", data={"csrf_token": token, "code": _code(secret.group(1))})
    assert client.get("/staff/users").status_code == 200
