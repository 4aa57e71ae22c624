"""The OpenAPI 3.1 document of the JSON API, declared here by hand next to the views.

``tests/functional/test_api_schema.py`` fuzzes every operation declared here through the WSGI app
(schemathesis) and checks that the app serves no route the document does not describe.
"""

from __future__ import annotations

from typing import Any

from distributor.audience.models import LawfulBasis, SubscriptionStatus
from distributor.delivery.models import DeliveryStatus, SendStatus
from distributor.releases.models import ReleaseStatus
from distributor.reports.definitions import DASHBOARD_FIGURES, EVENT_FIGURES, RELEASE_FIGURES

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if fmt:
        schema["format"] = fmt
    return schema


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


DATE_TIME = _nullable("string", "date-time")
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}

# Every report figure with its one-line definition (distributor.reports.definitions).
_METRICS = {key: {**INT, "description": f.definition} for key, f in RELEASE_FIGURES.items()}
_EVENTS = {key: {**INT, "description": f.definition} for key, f in EVENT_FIGURES.items()}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": STR}),
    "Page": _obj(
        {
            "page": INT,
            "per_page": INT,
            "total": INT,
            "next_page": _nullable("integer"),
        }
    ),
    "Me": _obj({"id": INT, "email": STR, "name": STR, "role": STR}),
    "Release": _obj(
        {
            "id": INT,
            "title": STR,
            "slug": STR,
            "summary": STR,
            "status": {"type": "string", "enum": [s.value for s in ReleaseStatus]},
            "kind": _nullable("string"),
            "embargo_until": DATE_TIME,
            "published_at": DATE_TIME,
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        }
    ),
    "Beat": _obj({"id": INT, "name": STR, "slug": STR, "is_public": BOOL}),
    "MediaList": _obj({"id": INT, "name": STR}),
    "MediaListChoice": {
        "type": "object",
        "properties": {
            "media_list_ids": {
                "type": "array",
                "maxItems": 1000,
                "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            }
        },
        "required": ["media_list_ids"],
    },
    "Journalist": _obj(
        {
            "id": INT,
            "email": _nullable("string"),
            "name": STR,
            "outlet": _nullable("string"),
            "role": STR,
            "country": STR,
            "language": STR,
            "is_paused": BOOL,
            "is_tracking_allowed": BOOL,
            "lawful_basis": STR,
            "created_at": DATE_TIME,
            "erased_at": DATE_TIME,
        }
    ),
    "NewJournalist": {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 320},
            "name": {"type": "string", "maxLength": 200},
            "outlet": {"type": "string", "maxLength": 200},
            "role": {"type": "string", "maxLength": 120},
            "country": {"type": "string", "maxLength": 2},
            "language": {"type": "string", "maxLength": 12},
            "lawful_basis": {"type": "string", "enum": [b.value for b in LawfulBasis]},
        },
        "required": ["email"],
    },
    "Subscription": _obj(
        {
            "id": INT,
            "journalist_id": INT,
            "beat_id": INT,
            "beat": _nullable("string"),
            "status": {"type": "string", "enum": [s.value for s in SubscriptionStatus]},
            "source": STR,
            "consent_at": DATE_TIME,
            "confirmed_at": DATE_TIME,
            "unsubscribed_at": DATE_TIME,
            "created_at": DATE_TIME,
        }
    ),
    "NewSubscription": {
        "type": "object",
        "properties": {
            "journalist_id": {"type": "integer", "minimum": 1},
            "beat_id": {"type": "integer", "minimum": 1},
        },
        "required": ["journalist_id", "beat_id"],
    },
    "Send": _obj(
        {
            "id": INT,
            "release_id": INT,
            "status": {"type": "string", "enum": [s.value for s in SendStatus]},
            "scheduled_for": DATE_TIME,
            "started_at": DATE_TIME,
            "finished_at": DATE_TIME,
            "recipient_count": INT,
        }
    ),
    "Metrics": _obj(_METRICS),
    "ReleaseReport": _obj(
        {
            "release_id": INT,
            "totals": _ref("Metrics"),
            "events": _obj(_EVENTS),
            "links": {
                "type": "array",
                "items": _obj(
                    {
                        "link_id": INT,
                        "url": STR,
                        "human_clicks": INT,
                        "human_clickers": INT,
                        "bot_clicks": INT,
                    }
                ),
            },
            "by_beat": {"type": "array", "items": {"type": "object"}},
            "by_outlet": {"type": "array", "items": {"type": "object"}},
            "by_list": {"type": "array", "items": {"type": "object"}},
            "timeline": {"type": "array", "items": {"type": "object"}},
            "definitions": {"type": "object", "additionalProperties": STR},
        }
    ),
    "Dashboard": _obj(
        {
            "days": {
                "type": "array",
                "items": _obj({"day": STR, "sent": INT, "bounced": INT, "complaints": INT}),
            },
            **{
                k: {**INT, "description": DASHBOARD_FIGURES[k].definition}
                for k in ("sent", "bounced", "complaints")
            },
            **{
                k: {"type": "number", "description": DASHBOARD_FIGURES[k].definition}
                for k in ("bounce_rate", "complaint_rate")
            },
            "warnings": {"type": "array", "items": _obj({"level": STR, "message": STR})},
        }
    ),
    "JournalistReport": _obj(
        {"journalist_id": INT, "deliveries": {"type": "array", "items": {"type": "object"}}}
    ),
    # -- embargo room --------------------------------------------------------------------------
    "EmbargoRoom": _obj(
        {
            "access_id": INT,
            "journalist_id": INT,
            "name": STR,
            "email": STR,
            "status": {"type": "string", "enum": ["active", "revoked"]},
            "delivery_status": STR,
            "granted_at": DATE_TIME,
            "revoked_at": DATE_TIME,
            "revoked_reason": STR,
            "accepted_version": _nullable("integer"),
            "accepted_at": DATE_TIME,
            "entered_at": DATE_TIME,
            "views": INT,
            "last_view_at": DATE_TIME,
            "downloads": {"type": "array", "items": STR},
            "refusals": INT,
        }
    ),
    "EmbargoEvent": _obj(
        {
            "occurred_at": DATE_TIME,
            "release_id": INT,
            "journalist_id": INT,
            "email": STR,
            "kind": STR,
            "detail": STR,
        }
    ),
    "TermsAcceptance": _obj(
        {
            "journalist_id": INT,
            "email": STR,
            "terms_version": INT,
            "accepted_at": DATE_TIME,
            "release_id": _nullable("integer"),
        }
    ),
    "EmbargoStanding": _obj(
        {
            "journalist_id": INT,
            "email": STR,
            "standing": {"type": "string", "enum": ["allowed", "not_allowed", "probation"]},
            "probation_until": DATE_TIME,
            "reason": STR,
            "updated_at": DATE_TIME,
        }
    ),
}


def _page_of(item: str) -> dict[str, Any]:
    return {
        "allOf": [
            _ref("Page"),
            _obj({"items": {"type": "array", "items": _ref(item)}}, required=["items"]),
        ]
    }


def _release_page_of(item: str) -> dict[str, Any]:
    return {"allOf": [_page_of(item), _obj({"release_id": INT})]}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Bad request"),
    "401": _json(_ref("Error"), "No valid token"),
    "403": _json(_ref("Error"), "The token's user may not do this"),
    "404": _json(_ref("Error"), "Not found"),
    "409": _json(_ref("Error"), "Conflict"),
    "422": _json(_ref("Error"), "Invalid input"),
}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0}}  # fmt: skip


PAGING = [
    _query("page", {"type": "integer", "minimum": 1}, "Page number, from 1"),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200}, "Items per page"),
]


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    status: str = "200",
    tag: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "parameters": params or [],
        "responses": {status: ok, **ERRORS},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every API operation."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "distributor API",
            "version": "1",
            "description": "Releases, journalists, subscriptions, sends and reports. "
            "Authenticate with a personal token from Staff > API tokens: "
            "`Authorization: Bearer <token>`. Lists are paginated with page and per_page.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/api/me": {"get": _op("me", "The token's user", _json(_ref("Me")), tag="account")},
            "/api/releases": {
                "get": _op(
                    "listReleases",
                    "Releases, newest first",
                    _json(_page_of("Release")),
                    params=[
                        *PAGING,
                        _query(
                            "status", {"type": "string", "enum": [s.value for s in ReleaseStatus]}
                        ),
                    ],
                    tag="releases",
                )
            },
            "/api/releases/{release_id}": {
                "get": _op(
                    "getRelease",
                    "One release",
                    _json(_ref("Release")),
                    params=[_path("release_id")],
                    tag="releases",
                )
            },
            "/api/releases/{release_id}/media-lists": {
                "put": _op(
                    "chooseReleaseMediaLists",
                    "Choose the media lists a send of the release goes to, besides its beats",
                    _json(_ref("Release")),
                    params=[_path("release_id")],
                    body="MediaListChoice",
                    tag="releases",
                )
            },
            "/api/media-lists": {
                "get": _op(
                    "listMediaLists",
                    "Media lists",
                    _json(_page_of("MediaList")),
                    params=PAGING,
                    tag="audience",
                )
            },
            "/api/beats": {
                "get": _op(
                    "listBeats", "Beats", _json(_page_of("Beat")), params=PAGING, tag="audience"
                )
            },
            "/api/journalists": {
                "get": _op(
                    "listJournalists",
                    "Journalists, optionally searched",
                    _json(_page_of("Journalist")),
                    params=[
                        *PAGING,
                        _query("q", {"type": "string", "maxLength": 200}, "Search text"),
                        _query("outlet_id", {"type": "integer", "minimum": 1}),
                    ],
                    tag="audience",
                ),
                "post": _op(
                    "createJournalist",
                    "Add a journalist (editors and admins)",
                    _json(_ref("Journalist"), "Created"),
                    body="NewJournalist",
                    status="201",
                    tag="audience",
                ),
            },
            "/api/journalists/{journalist_id}": {
                "get": _op(
                    "getJournalist",
                    "One journalist with subscriptions",
                    _json(_ref("Journalist")),
                    params=[_path("journalist_id")],
                    tag="audience",
                )
            },
            "/api/subscriptions": {
                "get": _op(
                    "listSubscriptions",
                    "Subscriptions",
                    _json(_page_of("Subscription")),
                    params=[
                        *PAGING,
                        _query("journalist_id", {"type": "integer", "minimum": 1}),
                        _query("beat_id", {"type": "integer", "minimum": 1}),
                        _query(
                            "status",
                            {"type": "string", "enum": [s.value for s in SubscriptionStatus]},
                        ),
                    ],
                    tag="audience",
                ),
                "post": _op(
                    "createSubscription",
                    "Subscribe a journalist to a beat (editors and admins)",
                    _json(_ref("Subscription"), "Created"),
                    body="NewSubscription",
                    status="201",
                    tag="audience",
                ),
            },
            "/api/sends": {
                "get": _op(
                    "listSends",
                    "Sends, newest first",
                    _json(_page_of("Send")),
                    params=[
                        *PAGING,
                        _query("status", {"type": "string", "enum": [s.value for s in SendStatus]}),
                        _query("release_id", {"type": "integer", "minimum": 1}),
                    ],
                    tag="sending",
                )
            },
            "/api/sends/{send_id}": {
                "get": _op(
                    "getSend",
                    "One send with its deliveries counted by status ("
                    + ", ".join(s.value for s in DeliveryStatus)
                    + ")",
                    _json(_ref("Send")),
                    params=[_path("send_id")],
                    tag="sending",
                )
            },
            "/api/reports/releases/{release_id}": {
                "get": _op(
                    "releaseReport",
                    "A release's delivery and engagement report",
                    _json(_ref("ReleaseReport")),
                    params=[_path("release_id")],
                    tag="reports",
                )
            },
            "/api/reports/dashboard": {
                "get": _op(
                    "dashboard",
                    "Daily volume, bounce and complaint rates with warnings",
                    _json(_ref("Dashboard")),
                    params=[_query("days", {"type": "integer", "minimum": 1, "maximum": 365})],
                    tag="reports",
                )
            },
            "/api/embargo/releases/{release_id}/rooms": {
                "get": _op(
                    "embargoRooms",
                    "Who received the release under embargo, accepted the terms, opened the "
                    "room and downloaded what (editors and admins)",
                    _json(_release_page_of("EmbargoRoom")),
                    params=[_path("release_id"), *PAGING],
                    tag="embargo",
                )
            },
            "/api/embargo/releases/{release_id}/log": {
                "get": _op(
                    "embargoAccessLog",
                    "Every view and download in the release's embargo rooms (no IP address)",
                    _json(_release_page_of("EmbargoEvent")),
                    params=[_path("release_id"), *PAGING],
                    tag="embargo",
                )
            },
            "/api/embargo/acceptances": {
                "get": _op(
                    "embargoTermsAcceptances",
                    "Embargo terms accepted: who, when, which version",
                    _json(_page_of("TermsAcceptance")),
                    params=[_query("journalist_id", {"type": "integer", "minimum": 1}), *PAGING],
                    tag="embargo",
                )
            },
            "/api/embargo/standings": {
                "get": _op(
                    "embargoStandings",
                    "Journalists whose embargo access was set (allowed, not allowed, probation)",
                    _json(_page_of("EmbargoStanding")),
                    params=PAGING,
                    tag="embargo",
                )
            },
            "/api/reports/journalists/{journalist_id}": {
                "get": _op(
                    "journalistReport",
                    "A journalist's engagement history",
                    _json(_ref("JournalistReport")),
                    params=[_path("journalist_id")],
                    tag="reports",
                )
            },
        },
    }
