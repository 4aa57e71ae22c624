"""Access policies, declared on every view and enforced deny-by-default.

Each view function carries an ``access_policy``: ``PUBLIC`` or a set of staff roles. A
``before_request`` hook refuses any endpoint that declares none, so a forgotten decorator is
a 403 rather than an open door; ``tests/functional/test_access_policy.py`` walks the URL map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from distributor.accounts.models import Role

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"
ALL_STAFF: frozenset[Role] = frozenset(Role)
EDITORS: frozenset[Role] = frozenset({Role.ADMIN, Role.EDITOR})
ADMINS: frozenset[Role] = frozenset({Role.ADMIN})

AccessPolicy = str | frozenset[Role]


def public(view: F) -> F:
    """Anyone may call this view, logged in or not."""
    view.access_policy = PUBLIC  # type: ignore[attr-defined]
    return view


def roles_required(roles: frozenset[Role]) -> Callable[[F], F]:
    """Only logged-in, active staff with one of ``roles`` may call this view."""

    def decorate(view: F) -> F:
        view.access_policy = frozenset(roles)  # type: ignore[attr-defined]
        return view

    return decorate


staff_required = roles_required(ALL_STAFF)
editor_required = roles_required(EDITORS)
admin_required = roles_required(ADMINS)


def policy_for(app: Flask, endpoint: str) -> AccessPolicy | None:
    view = app.view_functions.get(endpoint)
    if view is None:
        return None
    policy: AccessPolicy | None = getattr(view, "access_policy", None)
    return policy


def enforce_access_policy() -> Response | None:
    endpoint = request.endpoint
    if endpoint is None:
        return None  # 404/405 follow
    policy = policy_for(current_app, endpoint)
    if policy is None:
        current_app.logger.error("endpoint %s declares no access policy: denied", endpoint)
        abort(403)
    if policy == PUBLIC:
        return None
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            abort(401)
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    if current_user.role not in policy:
        abort(403)
    return None


def init_app(app: Flask) -> None:
    app.before_request(enforce_access_policy)
    static = app.view_functions.get("static")
    if static is not None:
        public(static)
