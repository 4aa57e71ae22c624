"""The JSON API: bearer tokens with the user's role, deny by default, JSON everywhere."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.models import ApiToken
from distributor.api.services import create_token, revoke_token
from distributor.audience.models import Beat
from distributor.reports.sample import seed_sent_release
from distributor.security import public
from tests.support.forms import csrf_token


def _bearer(session: Session, user: User) -> dict[str, str]:
    _, secret = create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_requests_without_a_valid_token_get_json_401(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user(Role.ADMIN)
    token, secret = create_token(session, user, "soon revoked")
    session.commit()
    for headers in (
        {},
        {"Authorization": "Bearer dst_wrong"},
        {"Authorization": f"Basic {secret}"},
    ):
        response = client.get("/api/releases", headers=headers)
        assert response.status_code == 401
        assert response.is_json and "error" in (response.json or {})
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        client.get("/api/releases", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    revoke_token(session, user, token.id)
    session.commit()
    assert (
        client.get("/api/releases", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 401
    )


def test_only_a_digest_of_the_token_is_stored(
    session: Session, make_user: Callable[..., User]
) -> None:
    token, secret = create_token(session, make_user(Role.EDITOR), "ci")
    stored = session.get(ApiToken, token.id)
    assert stored is not None
    assert secret not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64


def test_a_logged_in_browser_session_is_not_enough(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.ADMIN)
    assert client.get("/api/me").status_code == 401


def test_an_api_view_without_a_declared_policy_is_denied(
    app: Flask, session: Session, make_user: Callable[..., User]
) -> None:
    @public  # public for the session policy, but no api_access: the token check refuses it
    def sneaky() -> str:
        return "secret"

    app.add_url_rule("/api/sneaky", "api.sneaky", sneaky)
    headers = _bearer(session, make_user(Role.ADMIN))
    response = app.test_client().get("/api/sneaky", headers=headers)
    assert response.status_code == 403
    assert b"secret" not in response.data


def test_roles_apply_and_writes_create_records(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    officer = _bearer(session, make_user(Role.PRESS_OFFICER))
    editor = _bearer(session, make_user(Role.EDITOR))
    body = {"email": "Ana.Reporter@Gazette.example", "name": "Ana Reporter", "outlet": "Gazette"}
    denied = client.post("/api/journalists", json=body, headers=officer)
    assert denied.status_code == 403 and denied.is_json
    created = client.post("/api/journalists", json=body, headers=editor)
    assert created.status_code == 201, created.json
    journalist = created.json
    assert (
        journalist["email"] == "ana.reporter@gazette.example" and journalist["outlet"] == "Gazette"
    )
    again = client.post("/api/journalists", json=body, headers=editor)
    assert again.status_code == 409 and again.is_json

    beat = Beat(name="Harbours", slug="harbours-api")
    session.add(beat)
    session.commit()
    sub = client.post(
        "/api/subscriptions",
        json={"journalist_id": journalist["id"], "beat_id": beat.id},
        headers=editor,
    )
    assert sub.status_code == 201 and sub.json["status"] == "confirmed"
    # Reading subscriptions is an export: editors and admins only.
    assert (
        client.get(f"/api/subscriptions?journalist_id={journalist['id']}", headers=officer)
    ).status_code == 403
    listed = client.get(f"/api/subscriptions?journalist_id={journalist['id']}", headers=editor).json
    assert [s["beat"] for s in listed["items"]] == ["Harbours"]
    bad = client.post("/api/subscriptions", data="not json", headers=editor)
    assert bad.status_code == 422 and bad.is_json


def test_lists_are_paginated_and_reports_are_served(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    release = seed_sent_release(session, recipients=7, prefix="api")
    session.commit()
    headers = _bearer(session, make_user(Role.PRESS_OFFICER))
    exporter = _bearer(session, make_user(Role.EDITOR))
    first = client.get("/api/journalists?per_page=3", headers=exporter).json
    assert len(first["items"]) == 3 and first["next_page"] == 2 and first["total"] >= 7
    second = client.get("/api/journalists?per_page=3&page=2", headers=exporter).json
    assert {j["id"] for j in first["items"]}.isdisjoint({j["id"] for j in second["items"]})
    assert client.get("/api/journalists?per_page=0", headers=exporter).status_code == 422

    sends = client.get(f"/api/sends?release_id={release.id}", headers=headers).json
    (send,) = sends["items"]
    detail = client.get(f"/api/sends/{send['id']}", headers=headers).json
    assert sum(detail["deliveries"].values()) == 7
    report = client.get(f"/api/reports/releases/{release.id}", headers=headers).json
    assert report["totals"]["recipients"] == 7 and len(report["links"]) == 3
    assert client.get("/api/reports/dashboard", headers=headers).json["days"]
    missing = client.get("/api/releases/999999", headers=headers)
    assert missing.status_code == 404 and missing.is_json
    assert client.get("/api/nothing-here", headers=headers).is_json
    assert client.delete("/api/releases", headers=headers).status_code == 405


def test_openapi_document_is_public_and_describes_every_api_route(
    app: Flask, client: FlaskClient
) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    declared = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint == "api.openapi":
            continue
        path = rule.rule.replace("<int:", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method))
    assert served == declared


def test_staff_create_and_revoke_their_tokens(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    user = logged_in(Role.PRESS_OFFICER)
    token = csrf_token(client, "/staff/api-tokens/")
    page = client.post("/staff/api-tokens/", data={"csrf_token": token, "name": "Newsroom sync"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Newsroom sync" in html
    secret = html.split('<code id="new-token">')[1].split("</code>")[0]
    assert (
        client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).json["email"]
        == user.email
    )
    stored = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert stored is not None
    response = client.post(f"/staff/api-tokens/{stored.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_wrong_method_is_refused_with_the_methods_allowed(client: FlaskClient) -> None:
    # RFC 9110 section 15.5.6: a 405 response MUST carry Allow.
    refused = client.delete("/api/releases")
    assert refused.status_code == 405 and refused.is_json
    assert set(refused.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    page = client.post("/releases/any-release")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_the_openapi_document_states_the_bounds_the_api_enforces(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    document = client.get("/api/openapi.json").json
    params = {p["name"]: p for p in document["paths"]["/api/journalists"]["get"]["parameters"]}
    assert params["per_page"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert params["outlet_id"]["schema"]["minimum"] == 1
    headers = _bearer(session, make_user(Role.EDITOR))
    for query in ("per_page=201", "outlet_id=0", "page=0", "colour=blue", "outlet_id=x"):
        refused = client.get(f"/api/journalists?{query}", headers=headers)
        assert refused.status_code == 422, query
        assert refused.json["error"].split(":")[0] in query
    new = document["components"]["schemas"]["NewJournalist"]["properties"]
    assert {"type": "null"} in new["role"]["anyOf"]  # role: null is documented and accepted
    created = client.post(
        "/api/journalists",
        json={"email": "amal.haddad@example.org", "role": None, "name": "Amal Haddad"},
        headers=headers,
    )
    assert created.status_code == 201 and created.json["role"] == ""
    wrong_type = client.post(
        "/api/journalists", json={"email": "x@example.org", "name": 7}, headers=headers
    )
    assert wrong_type.status_code == 422 and wrong_type.json["error"].startswith("name:")
