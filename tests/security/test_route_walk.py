"""Every route in ``app.url_map``, as anonymous and as each role, with hostile input: no 5xx.

Payloads: NUL in the path, the query and form fields; over-long values; JSON nested far too
deep; JSON of the wrong types; ids beyond what the database stores. A route may refuse,
redirect or ignore any of it, but never answer 5xx (finding 9, and the outside tester's method).
Whatever a walked route queues goes to the test settings' throwaway SQLite broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from distributor.accounts.models import Role, User
from tests.support.forms import csrf_token

# Logging out ends the walk's own session; both are tested on their own (test_sessions.py).
SKIP = {"accounts.logout", "accounts.end_all_sessions", "static"}
LONG = "A" * 20_000
NESTED = "[" * 5_000 + "]" * 5_000
WRONG_TYPES = json.dumps(
    {
        "title": 5,
        "email": ["x"],
        "beat_ids": "all",
        "journalist_id": {"a": 1},
        "beat_id": -1,
        "page": None,
    }
)


def _arguments(rule: Rule, *, hostile: bool) -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {}
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__
        base[name] = 1 if converter == "IntegerConverter" else "x"
    yield base
    if not hostile:
        return
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__
        if converter == "IntegerConverter":
            yield {**base, name: 2**63}
        else:
            yield {**base, name: "a\x00b"}
            yield {**base, name: LONG}


def _paths(app: Flask, rule: Rule) -> list[str]:
    # Built eagerly: a request context left open across the walk's requests would share g.
    paths = []
    with app.test_request_context():
        from flask import url_for

        for values in _arguments(rule, hostile=True):
            try:
                paths.append(url_for(rule.endpoint, **values))
            except Exception:
                continue
    return paths


def _requests(path: str, method: str, token: str) -> Iterator[dict[str, Any]]:
    if method in ("GET", "HEAD"):
        yield {"path": path}
        yield {"path": path, "query_string": {"q": "\x00", "page": "\x00", "beat": "\x00"}}
        yield {"path": path, "query_string": {"q": LONG, "page": "-1", "per_page": "1e9"}}
        yield {"path": path, "query_string": {"page": "x", "status": "[]", "id": "2" * 30}}
        return
    form = {"csrf_token": token}
    yield {
        "path": path,
        "data": {**form, "email": "a\x00@example.org", "name": "\x00", "q": "\x00"},
    }
    yield {
        "path": path,
        "data": {**form, "email": LONG + "@example.org", "name": LONG, "title": LONG, "body": LONG},
    }
    yield {"path": path, "data": {**form, "beats": ["x", "\x00"], "role": "root", "id": "-1"}}
    yield {"path": path, "data": NESTED, "content_type": "application/json"}
    yield {"path": path, "data": WRONG_TYPES, "content_type": "application/json"}
    yield {"path": path, "data": '{"a": "\\u0000"}', "content_type": "application/json"}
    yield {"path": path, "data": NESTED, "content_type": "text/plain"}


def _walk(app: Flask, client: FlaskClient, token: str) -> list[str]:
    failures: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP:
            continue
        for path in _paths(app, rule):
            for method in sorted((rule.methods or set()) - {"OPTIONS"}):
                for request in _requests(path, method, token):
                    try:
                        response = client.open(method=method, **request)
                    except Exception as exc:
                        failures.append(f"{method} {rule.rule} {request!r:.160} -> {exc!r:.200}")
                        continue
                    if response.status_code >= 500:
                        failures.append(
                            f"{method} {rule.rule} {request!r:.160} -> {response.status_code}"
                        )
    return failures


@pytest.mark.usefixtures("mail_transport")
@pytest.mark.parametrize("role", [None, Role.PRESS_OFFICER, Role.EDITOR, Role.ADMIN])
def test_no_route_answers_5xx_to_hostile_input(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    role: Role | None,
) -> None:
    from tests.conftest import login

    if role is None:
        token = csrf_token(client, "/subscribe")
    else:
        login(client, make_user(role))
        token = csrf_token(client, "/account")
    failures = _walk(app, client, token)
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} in all)"
