"""Finding 4: a session is a server-side record; a copied cookie dies with it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from distributor.accounts import services
from distributor.accounts.models import Role, StaffSession, User
from distributor.db import Database
from distributor.settings import Settings
from tests.conftest import login
from tests.support.forms import csrf_token

PAGE = "/staff/audience/journalists"


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def _in(client: FlaskClient) -> bool:
    return client.get(PAGE).status_code == 200


def test_logout_kills_a_copied_cookie(
    app: Flask, client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    thief = _copy(app, client)
    assert _in(thief)
    client.post("/logout", data={"csrf_token": csrf_token(client, PAGE)})
    assert not _in(client)
    assert not _in(thief)


def test_idle_and_absolute_timeouts(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    logged_in(Role.EDITOR)
    assert _in(client)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    session.execute(update(StaffSession).values(last_seen_at=long_ago))
    session.commit()
    assert not _in(client)


def test_absolute_timeout_even_when_active(
    app: Flask, make_user: Callable[..., User], session: Session
) -> None:
    client = app.test_client()
    login(client, make_user(Role.EDITOR))
    assert _in(client)
    session.execute(
        update(StaffSession).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    )
    session.commit()
    assert not _in(client)


def test_password_change_and_disable_end_other_sessions(
    app: Flask, make_user: Callable[..., User], session: Session
) -> None:
    user = make_user(Role.EDITOR)
    first, second = app.test_client(), app.test_client()
    login(first, user)
    login(second, user)
    services.set_password(session, user, "a much longer new passphrase 42")
    session.commit()
    assert not _in(first) and not _in(second)
    login(first, user, password="a much longer new passphrase 42")
    assert _in(first)
    services.set_active(session, user.email, is_active=False)
    session.commit()
    assert not _in(first)


def test_log_out_everywhere(app: Flask, make_user: Callable[..., User]) -> None:
    user = make_user(Role.PRESS_OFFICER)
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user)
    login(phone, user)
    assert b"Log out everywhere" in laptop.get("/account").data
    laptop.post("/account/sessions/end-all", data={"csrf_token": csrf_token(laptop, "/account")})
    assert not _in(laptop) and not _in(phone)


def test_proxy_fix_only_when_configured(settings: Settings, db: Database) -> None:
    import dataclasses

    from distributor.app import create_app
    from distributor.mail.transport import InMemoryTransport
    from distributor.security import public

    def client_ip_seen(proxies: int) -> str:
        app = create_app(
            dataclasses.replace(settings, proxy_fix_x_for=proxies),
            db=db,
            mail_transport=InMemoryTransport(),
        )

        @app.get("/_test/ip")
        @public
        def ip() -> str:
            from flask import request

            return request.remote_addr or ""

        return (
            app.test_client()
            .get(
                "/_test/ip",
                headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
                environ_base={"REMOTE_ADDR": "10.0.0.2"},
            )
            .get_data(as_text=True)
        )

    assert client_ip_seen(0) == "10.0.0.2"
    assert client_ip_seen(1) == "203.0.113.9"  # the hop our one proxy appended, not the client's
