"""Finding 3: a strict, nonce-based CSP on every page; HSTS in production."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from distributor.accounts.models import Role, User
from distributor.app import create_app
from distributor.db import Database
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def _script_src(csp: str) -> str:
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    return directives["script-src"]


def _check_page(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, path
    csp = response.headers["Content-Security-Policy"]
    script_src = _script_src(csp)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    nonce = re.search(r"'nonce-([^']+)'", script_src)
    assert nonce, csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    html = response.get_data(as_text=True)
    for tag in re.findall(r"<(?:script|style)\b[^>]*>", html):
        assert f'nonce="{nonce.group(1)}"' in tag, (path, tag)
    assert not INLINE_HANDLER.search(html), path
    assert "javascript:" not in html, path


def test_every_page_has_a_strict_csp_with_a_fresh_nonce(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    for path in ("/", "/subscribe", "/login"):
        _check_page(client, path)
    first = client.get("/").headers["Content-Security-Policy"]
    assert first != client.get("/").headers["Content-Security-Policy"]
    logged_in(Role.ADMIN)
    for path in ("/staff/", "/staff/audience/journalists", "/staff/releases/", "/account"):
        _check_page(client, path)


def test_no_template_has_inline_handlers_or_unnonced_scripts() -> None:
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not INLINE_HANDLER.search(text), template
        assert "javascript:" not in text, template
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", text):
            assert "csp_nonce()" in tag, (template, tag)


def test_embed_form_keeps_its_frame_ancestors_inside_the_full_policy(client: FlaskClient) -> None:
    csp = client.get("/subscribe/embed").headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "script-src 'self' 'nonce-" in csp


@pytest.mark.usefixtures("app")
def test_hsts_only_in_production(client: FlaskClient, settings: Settings, db: Database) -> None:
    assert "Strict-Transport-Security" not in client.get("/").headers
    production = dataclasses.replace(
        settings, env="production", public_base_url="https://news.example.org"
    )
    prod_app = create_app(production, db=db, mail_transport=InMemoryTransport())
    response = prod_app.test_client().get("/", base_url="https://news.example.org")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_private_pages_are_never_stored_by_caches(
    client: FlaskClient, logged_in: Callable[[Role], User], settings: Settings
) -> None:
    from distributor.audience.tokens import preferences_token

    assert client.get("/login").headers["Cache-Control"] == "no-store"
    prefs = client.get(f"/preferences/{preferences_token(settings, 999999)}")
    assert prefs.headers["Cache-Control"] == "no-store"
    logged_in(Role.EDITOR)
    assert client.get("/staff/audience/journalists").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")


def test_dev_inbox_is_off_by_default_in_production() -> None:
    production = {"DISTRIBUTOR_ENV": "production", "SECRET_KEY": "k" * 40}
    assert Settings.from_env(production).dev_inbox_enabled is False
    assert Settings.from_env({**production, "DEV_INBOX": "true"}).dev_inbox_enabled is True
    assert Settings.from_env({}).dev_inbox_enabled is True
