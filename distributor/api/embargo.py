"""JSON resources of the embargo room: rooms per release, the access log, terms acceptances
and embargo standings (editors and admins). The staff pages offer the same rows as CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from distributor.api.auth import api_roles
from distributor.db import request_session
from distributor.embargo import reports
from distributor.errors import NotFound, ValidationFailed
from distributor.releases.models import Release
from distributor.security import EDITORS

# Nested under the ``api`` blueprint: its token check, error handlers and id range apply.
bp = Blueprint("embargo", __name__, url_prefix="/embargo")

T = TypeVar("T")
_MAX_PER_PAGE = 200


def _int_arg(name: str, default: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be an integer between 1 and {high}")
    return int(raw)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def _page(items: Sequence[T], render: Callable[[T], dict[str, Any]], **extra: Any) -> Response:
    page = _int_arg("page", 1, 1_000_000)
    per_page = _int_arg("per_page", 50, _MAX_PER_PAGE)
    chunk = items[(page - 1) * per_page : page * per_page]
    return jsonify(
        items=[render(item) for item in chunk],
        page=page,
        per_page=per_page,
        total=len(items),
        next_page=page + 1 if page * per_page < len(items) else None,
        **extra,
    )


def _row(item: Any) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in asdict(item).items()}


def _release_id(release_id: int) -> int:
    if request_session().get(Release, release_id) is None:
        raise NotFound("Release not found")
    return release_id


@bp.get("/releases/<int:release_id>/rooms")
@api_roles(EDITORS)
def rooms(release_id: int) -> Response:
    """Who received the release under embargo, accepted, opened the room, downloaded what."""
    rows = reports.room_rows(request_session(), _release_id(release_id))
    return _page(rows, _row, release_id=release_id)


@bp.get("/releases/<int:release_id>/log")
@api_roles(EDITORS)
def access_log(release_id: int) -> Response:
    """Every view and download in the release's rooms (time and what; no IP address)."""
    rows = reports.access_log(request_session(), release_id=_release_id(release_id))
    return _page(rows, _row, release_id=release_id)


@bp.get("/acceptances")
@api_roles(EDITORS)
def acceptances() -> Response:
    """Evidence of embargo-terms acceptance: who, when, which version."""
    raw = request.args.get("journalist_id", "")
    if raw and not raw.isdigit():
        raise ValidationFailed("journalist_id must be an integer")
    journalist_id = int(raw) if raw and int(raw) < 2**31 else None
    return _page(reports.acceptances(request_session(), journalist_id), _row)


@bp.get("/standings")
@api_roles(EDITORS)
def standings() -> Response:
    """Journalists whose embargo access was set (not allowed, probation, allowed again)."""
    return _page(reports.standings(request_session()), _row)
