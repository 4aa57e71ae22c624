"""Finding 9: NUL bytes and over-deep JSON are a 400 on every route, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.input_guard import json_depth
from tests.support.forms import csrf_token

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    "path",
    [
        "/?q=%00",
        "/releases/a%00b",
        "/subscribe?beat=%00",
        "/preferences/abc%00def",
        "/t/c/abc%00/1",
        "/feed.atom?x=%00",
    ],
)
def test_nul_in_path_or_query_is_400(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code in (400, 404)


def test_nul_in_a_form_value_is_400(client: FlaskClient) -> None:
    token = csrf_token(client, "/subscribe")
    response = client.post(
        "/subscribe", data={"csrf_token": token, "email": "a\x00@example.org", "name": "x"}
    )
    assert response.status_code == 400


def test_deep_json_to_webhooks_and_api_is_400(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    for path in ("/webhooks/ses", "/webhooks/sendgrid", "/webhooks/mailgun", "/webhooks/postmark"):
        for content_type in ("application/json", "text/plain"):
            response = client.post(path, data=DEEP, content_type=content_type)
            assert response.status_code == 400, (path, content_type)
    _, secret = create_token(session, make_user(Role.ADMIN), "deep")
    session.commit()
    response = client.post(
        "/api/journalists",
        data=DEEP,
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 400
    assert response.is_json
    nul = client.post(
        "/api/journalists",
        data='{"email": "a\\u0000@example.org"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert nul.status_code == 400


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[["}]}') == 3
    assert json_depth(b'["\\"[[", "\\\\", [[]]]') == 3
    assert json_depth(b"[" * 10_000) == 65  # stops counting past the limit
