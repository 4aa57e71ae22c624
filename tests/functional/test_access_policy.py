"""Every route declares who may use it; staff routes refuse the wrong people."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from distributor.accounts.models import Role
from distributor.security import PUBLIC, policy_for

# Endpoints that are meant to be reachable without logging in. Adding to this list is a
# deliberate, reviewed decision.
EXPECTED_PUBLIC_PREFIXES = (
    "static",
    "accounts.login",
    "health.",
    "index",
    "public.",
    "newsroom.",
    "organisation.logo",
    "organisation.brand_css",
    "media.download",  # library files of public releases, while their rights last
    "media.press_kit",  # a public release's zip
    "media.rendition",  # the pictures a public release page shows
    "media.page",  # the newsroom's media page
    "audience_public.",
    "embargo_room.",  # the personal room links journalists get by mail
    "tracking.",
    "api.",
    "bounces.ses_webhook",
    "bounces.postmark_webhook",
    "bounces.sendgrid_webhook",
    "bounces.mailgun_webhook",
)


def test_every_route_declares_an_access_policy(app: Flask) -> None:
    missing = [
        rule.endpoint for rule in app.url_map.iter_rules() if policy_for(app, rule.endpoint) is None
    ]
    assert missing == [], f"routes without an access policy: {missing}"


def test_public_routes_are_the_expected_ones(app: Flask) -> None:
    public = sorted(
        {r.endpoint for r in app.url_map.iter_rules() if policy_for(app, r.endpoint) == PUBLIC}
    )
    unexpected = [e for e in public if not e.startswith(EXPECTED_PUBLIC_PREFIXES)]
    assert unexpected == []


def test_undeclared_view_is_denied(app: Flask) -> None:
    @app.get("/forgotten")
    def forgotten() -> str:
        return "secret"

    response = app.test_client().get("/forgotten")
    assert response.status_code == 403
    assert b"secret" not in response.data


def _staff_get_rules(app: Flask) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        policy = policy_for(app, rule.endpoint)
        if policy == PUBLIC or "GET" not in (rule.methods or set()) or rule.arguments:
            continue
        paths.append(rule.rule)
    return paths


def test_anonymous_visitors_are_sent_to_login_from_every_staff_page(
    app: Flask, client: FlaskClient
) -> None:
    paths = _staff_get_rules(app)
    assert paths, "expected some staff pages"
    for path in paths:
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path


@pytest.mark.parametrize("role", list(Role))
def test_each_role_reaches_exactly_its_pages(
    app: Flask, client: FlaskClient, logged_in, role: Role
) -> None:
    logged_in(role)
    for rule in app.url_map.iter_rules():
        policy = policy_for(app, rule.endpoint)
        if policy == PUBLIC or "GET" not in (rule.methods or set()) or rule.arguments:
            continue
        assert isinstance(policy, frozenset), rule.endpoint  # every other view names its roles
        response = client.get(rule.rule)
        if role in policy:
            assert response.status_code in (200, 302), (rule.rule, response.status_code)
        else:
            assert response.status_code == 403, (rule.rule, role)
