"""Bearer-token access for the JSON API, deny by default.

Every API view is ``@public`` for the session-based policy in ``distributor.security`` (a
browser session must not be enough to call the API) and declares its own ``api_access``: the
staff roles allowed, or ``OPEN`` for the OpenAPI document. The blueprint's ``before_request``
refuses any API view without a declaration, any request without a valid token, and any role the
view does not allow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, jsonify, request
from werkzeug.wrappers import Response

from distributor.accounts.models import User
from distributor.api.services import authenticate
from distributor.db import request_session
from distributor.security import public

F = TypeVar("F", bound=Callable[..., Any])
OPEN = "open"


def api_roles(roles: frozenset[Any]) -> Callable[[F], F]:
    """Callable with a valid token of a user holding one of ``roles``."""

    def decorate(view: F) -> F:
        view.api_access = frozenset(roles)  # type: ignore[attr-defined]
        return public(view)

    return decorate


def api_open(view: F) -> F:
    """Callable without a token (only the OpenAPI document)."""
    view.api_access = OPEN  # type: ignore[attr-defined]
    return public(view)


def json_error(status: int, message: str, **headers: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


def check_token() -> Response | None:
    endpoint = request.endpoint or ""
    view = current_app.view_functions.get(endpoint)
    access = getattr(view, "api_access", None)
    if access is None:
        return json_error(403, "This endpoint declares no API access policy.")
    if access == OPEN:
        return None
    user = authenticate(request_session(), request.headers.get("Authorization", ""))
    if user is None:
        return json_error(
            401,
            "A valid API token is required: Authorization: Bearer <token>.",
            **{"WWW-Authenticate": 'Bearer realm="distributor"'},
        )
    if user.role not in access:
        return json_error(403, "Your role may not use this endpoint.")
    g.api_user = user
    return None


def api_user() -> User:
    user: User = g.api_user
    return user
