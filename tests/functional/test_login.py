from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.accounts.services import set_active
from tests.conftest import TEST_PASSWORD, login
from tests.support.forms import csrf_token


def test_login_and_logout(client: FlaskClient, make_user) -> None:
    user = make_user(Role.EDITOR)
    login(client, user)
    home = client.get("/staff/")
    assert home.status_code == 200
    assert user.name in home.get_data(as_text=True)

    token = csrf_token(client, "/staff/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/staff/").status_code == 302


def test_wrong_password_is_refused_with_a_clear_message(client: FlaskClient, make_user) -> None:
    user = make_user(Role.ADMIN)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": user.email, "password": "nope", "csrf_token": token}
    )
    assert response.status_code == 200
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_login_without_csrf_token_is_rejected(client: FlaskClient, make_user) -> None:
    user = make_user(Role.ADMIN)
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


def test_disabled_user_cannot_log_in_and_is_logged_out(
    client: FlaskClient, make_user, session: Session
) -> None:
    user = make_user(Role.PRESS_OFFICER)
    login(client, user)
    set_active(session, user.email, is_active=False)
    session.commit()
    assert client.get("/staff/").status_code == 302
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 200


def test_next_parameter_cannot_redirect_off_site(client: FlaskClient, make_user) -> None:
    user = make_user(Role.ADMIN)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=//evil.example/x",
        data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/staff/"


def test_session_cookie_flags(client: FlaskClient, make_user) -> None:
    user = make_user(Role.ADMIN)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
