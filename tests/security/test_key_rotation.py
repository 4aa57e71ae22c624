"""Finding 15: SECRET_KEY can be rotated; SECRET_KEY_FALLBACKS keeps every signed thing valid."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from distributor.accounts.models import Role, User
from distributor.app import create_app
from distributor.audience import tokens
from distributor.db import Database
from distributor.delivery.link_tokens import FastToken
from distributor.mail import verp
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.conftest import login

NEW_KEY = "a-brand-new-secret-key-for-after-the-rotation-0001"


def _rotated(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, secret_key=NEW_KEY, secret_key_fallbacks=settings.secret_key
    )


def test_links_and_header_tokens_survive_a_rotation(settings: Settings) -> None:
    old = {
        "confirm": tokens.confirm_token(settings, 7, [1], "v", request_id=3),
        "prefs": tokens.preferences_token(settings, 7),
        "unsub": FastToken(settings, tokens.unsubscribe_token, tokens.load_unsubscribe_token)(7),
        "bounce": verp.make(settings, verp.BOUNCE, verp.DELIVERY, 42),
    }
    rotated = _rotated(settings)
    assert tokens.load_confirm_token(rotated, old["confirm"]).journalist_id == 7
    assert tokens.load_preferences_token(rotated, old["prefs"]) == 7
    assert tokens.load_unsubscribe_token(rotated, old["unsub"]) == 7
    assert verp.read(rotated, verp.BOUNCE, old["bounce"]) == (verp.DELIVERY, 42)
    without_fallback = dataclasses.replace(rotated, secret_key_fallbacks="")
    try:
        tokens.load_preferences_token(without_fallback, old["prefs"])
    except tokens.InvalidToken:
        pass
    else:
        raise AssertionError("an old token must need the fallback")
    assert verp.read(without_fallback, verp.BOUNCE, old["bounce"]) is None


@pytest.mark.usefixtures("session")
def test_staff_sessions_survive_a_rotation(
    settings: Settings, db: Database, make_user: Callable[..., User]
) -> None:
    before = create_app(settings, db=db, mail_transport=InMemoryTransport())
    client = before.test_client()
    login(client, make_user(Role.EDITOR))
    cookie = client.get_cookie("session")
    assert cookie is not None
    after = create_app(_rotated(settings), db=db, mail_transport=InMemoryTransport())
    same_browser = after.test_client()
    same_browser.set_cookie("session", cookie.value)
    assert same_browser.get("/staff/audience/journalists").status_code == 200
