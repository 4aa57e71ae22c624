"""JSON resources of the embargo room: rooms per release, the access log, terms acceptances
and embargo standings (editors and admins). The staff pages offer the same rows as CSV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from flask import Blueprint

from distributor.api import schemas as out
from distributor.api.auth import api_roles
from distributor.api.contract import operation
from distributor.db import request_session
from distributor.embargo import reports
from distributor.errors import NotFound
from distributor.releases.models import Release
from distributor.security import EDITORS

# Nested under the ``api`` blueprint: its token check, error handlers and id range apply.
bp = Blueprint("embargo", __name__, url_prefix="/embargo")

P = TypeVar("P", bound=out.Page[Any])


def _page(model: type[P], rows: Sequence[Any], query: out.PageQuery, **extra: Any) -> P:
    start = (query.page - 1) * query.per_page
    chunk = rows[start : start + query.per_page]
    return model(
        items=[asdict(row) for row in chunk],
        page=query.page,
        per_page=query.per_page,
        total=len(rows),
        next_page=query.page + 1 if query.page * query.per_page < len(rows) else None,
        **extra,
    )


def _release_id(release_id: int) -> int:
    if request_session().get(Release, release_id) is None:
        raise NotFound("Release not found")
    return release_id


@bp.get("/releases/<int:release_id>/rooms")
@api_roles(EDITORS)
@operation(
    "embargoRooms",
    "Who received the release under embargo, accepted the terms, opened the room and "
    "downloaded what (editors and admins)",
    tag="embargo",
    query=out.PageQuery,
    response=out.ReleasePage[out.EmbargoRoom],
)
def rooms(release_id: int, query: out.PageQuery) -> out.ReleasePage[out.EmbargoRoom]:
    rows = reports.room_rows(request_session(), _release_id(release_id))
    return _page(out.ReleasePage[out.EmbargoRoom], rows, query, release_id=release_id)


@bp.get("/releases/<int:release_id>/log")
@api_roles(EDITORS)
@operation(
    "embargoAccessLog",
    "Every view and download in the release's embargo rooms (no IP address)",
    tag="embargo",
    query=out.PageQuery,
    response=out.ReleasePage[out.EmbargoEvent],
)
def access_log(release_id: int, query: out.PageQuery) -> out.ReleasePage[out.EmbargoEvent]:
    rows = reports.access_log(request_session(), release_id=_release_id(release_id))
    return _page(out.ReleasePage[out.EmbargoEvent], rows, query, release_id=release_id)


@bp.get("/acceptances")
@api_roles(EDITORS)
@operation(
    "embargoTermsAcceptances",
    "Embargo terms accepted: who, when, which version",
    tag="embargo",
    query=out.AcceptanceQuery,
    response=out.Page[out.TermsAcceptance],
)
def acceptances(query: out.AcceptanceQuery) -> out.Page[out.TermsAcceptance]:
    rows = reports.acceptances(request_session(), query.journalist_id)
    return _page(out.Page[out.TermsAcceptance], rows, query)


@bp.get("/standings")
@api_roles(EDITORS)
@operation(
    "embargoStandings",
    "Journalists whose embargo access was set (allowed, not allowed, probation)",
    tag="embargo",
    query=out.PageQuery,
    response=out.Page[out.EmbargoStanding],
)
def standings(query: out.PageQuery) -> out.Page[out.EmbargoStanding]:
    return _page(out.Page[out.EmbargoStanding], reports.standings(request_session()), query)
