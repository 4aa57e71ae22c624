"""JSON resources: releases, journalists, subscriptions, sends and reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from distributor.api import schema
from distributor.api.auth import api_open, api_roles, api_user, check_token, json_error
from distributor.api.embargo import bp as embargo_bp
from distributor.audience import services as audience
from distributor.audience.models import (
    Beat,
    Journalist,
    LawfulBasis,
    MediaList,
    Subscription,
    SubscriptionStatus,
)
from distributor.db import request_session, utcnow
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.errors import Conflict, DomainError, NotFound, ValidationFailed
from distributor.extensions import csrf
from distributor.releases import services as release_services
from distributor.releases.models import Release, ReleaseStatus
from distributor.reports import health
from distributor.reports import services as reports
from distributor.reports.history import journalist_history
from distributor.security import ALL_STAFF, EDITORS

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # bearer tokens are not sent by browsers on their own: no CSRF to defend
bp.before_request(check_token)
bp.register_blueprint(embargo_bp)

# Reading journalists' personal data through the API is an export: the same roles as the CSV
# export (editors and admins), never press officers (OWASP ASVS V4.2, least privilege).
EXPORTERS = EDITORS
MAX_PER_PAGE = 200
MAX_ID = 2**31 - 1


@bp.url_value_preprocessor
def _ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    # An id beyond what the database stores names nothing (and would overflow the driver).
    for value in (values or {}).values():
        if isinstance(value, int) and value > MAX_ID:
            raise NotFound("Not found.")


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError) -> Response:
    return json_error(exc.status_code, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return json_error(exc.code or 500, exc.description or exc.name)


# -- helpers ---------------------------------------------------------------------------------


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}")
    return value


def _optional_int(name: str) -> int | None:
    if request.args.get(name) in (None, ""):
        return None
    return _int_arg(name, 0, low=1, high=MAX_ID)


def _enum_arg(name: str, enum_cls: Any) -> Any:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return enum_cls(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ValidationFailed(f"{name} must be one of: {allowed}") from None


def _paginate(session: Session, stmt: Select[Any], render: Any) -> Response:
    page = _int_arg("page", 1, low=1, high=1_000_000)
    per_page = _int_arg("per_page", 50, low=1, high=MAX_PER_PAGE)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return jsonify(
        items=[render(row) for row in rows],
        page=page,
        per_page=per_page,
        total=total,
        next_page=page + 1 if page * per_page < total else None,
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    return data


def _str_field(data: dict[str, Any], name: str, *, required: bool = False, limit: int = 500) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be a string")
    if required and not value.strip():
        raise ValidationFailed(f"{name} is required")
    if len(value) > limit:
        raise ValidationFailed(f"{name} is longer than {limit} characters")
    return value


def _int_field(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise ValidationFailed(f"{name} must be a positive integer")
    return value


# -- renderers -------------------------------------------------------------------------------


def release_json(r: Release) -> dict[str, Any]:
    return {
        "id": r.id,
        "title": r.title,
        "slug": r.slug,
        "summary": r.summary,
        "status": r.status.value,
        "kind": r.kind.name if r.kind else None,
        "embargo_until": _iso(r.embargo_until),
        "published_at": _iso(r.published_at),
        "created_at": _iso(r.created_at),
        "updated_at": _iso(r.updated_at),
    }


def journalist_json(j: Journalist) -> dict[str, Any]:
    erased = j.erased_at is not None
    return {
        "id": j.id,
        "email": None if erased else j.email,
        "name": j.name,
        "outlet": j.outlet.name if j.outlet else None,
        "role": j.role,
        "country": j.country,
        "language": j.language,
        "is_paused": j.is_paused,
        "is_tracking_allowed": j.is_tracking_allowed,
        "lawful_basis": j.lawful_basis.value,
        "created_at": _iso(j.created_at),
        "erased_at": _iso(j.erased_at),
    }


def subscription_json(s: Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "journalist_id": s.journalist_id,
        "beat_id": s.beat_id,
        "beat": s.beat.name if s.beat else None,
        "status": s.status.value,
        "source": s.source,
        "consent_at": _iso(s.consent_at),
        "confirmed_at": _iso(s.confirmed_at),
        "unsubscribed_at": _iso(s.unsubscribed_at),
        "created_at": _iso(s.created_at),
    }


def media_list_json(m: MediaList) -> dict[str, Any]:
    return {"id": m.id, "name": m.name}


def beat_json(b: Beat) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "slug": b.slug, "is_public": b.is_public}


def send_json(s: Send) -> dict[str, Any]:
    return {
        "id": s.id,
        "release_id": s.release_id,
        "status": s.status.value,
        "scheduled_for": _iso(s.scheduled_for),
        "started_at": _iso(s.started_at),
        "finished_at": _iso(s.finished_at),
        "recipient_count": s.recipient_count,
    }


# -- endpoints -------------------------------------------------------------------------------


@bp.get("/openapi.json")
@api_open
def openapi() -> Response:
    return jsonify(schema.document())


@bp.get("/me")
@api_roles(ALL_STAFF)
def me() -> Response:
    user = api_user()
    return jsonify(id=user.id, email=user.email, name=user.name, role=user.role.value)


@bp.get("/releases")
@api_roles(ALL_STAFF)
def releases() -> Response:
    stmt = select(Release).order_by(Release.id.desc())
    status = _enum_arg("status", ReleaseStatus)
    if status is not None:
        stmt = stmt.where(Release.status == status)
    return _paginate(request_session(), stmt, release_json)


@bp.get("/releases/<int:release_id>")
@api_roles(ALL_STAFF)
def release(release_id: int) -> Response:
    found = request_session().get(Release, release_id)
    if found is None:
        raise NotFound("No such release.")
    return jsonify(_release_detail(found))


def _release_detail(found: Release) -> dict[str, Any]:
    data = release_json(found)
    data["beats"] = [b.name for b in found.beats]
    data["media_lists"] = [media_list_json(m) for m in found.media_lists]
    return data


@bp.put("/releases/<int:release_id>/media-lists")
@api_roles(ALL_STAFF)
def choose_media_lists(release_id: int) -> Response:
    """Choose the media lists a send of the release goes to (replaces the earlier choice)."""
    ids = _json_body().get("media_list_ids")
    if (
        not isinstance(ids, list)
        or len(ids) > 1000
        or not all(type(i) is int and 1 <= i <= MAX_ID for i in ids)
    ):
        raise ValidationFailed("media_list_ids must be a list of media list ids.")
    session = request_session()
    found = session.get(Release, release_id)
    if found is None:
        raise NotFound("No such release.")
    release_services.choose_media_lists(session, found, editor=api_user(), media_list_ids=ids)
    return jsonify(_release_detail(found))


@bp.get("/media-lists")
@api_roles(ALL_STAFF)
def media_lists() -> Response:
    return _paginate(
        request_session(), select(MediaList).order_by(MediaList.name, MediaList.id), media_list_json
    )


@bp.get("/beats")
@api_roles(ALL_STAFF)
def beats() -> Response:
    return _paginate(request_session(), select(Beat).order_by(Beat.name, Beat.id), beat_json)


@bp.get("/journalists")
@api_roles(EXPORTERS)
def journalists() -> Response:
    q = request.args.get("q", "")[:200]
    stmt = audience.journalist_query(q=q, outlet_id=_optional_int("outlet_id"))
    return _paginate(
        request_session(), stmt.order_by(None).order_by(Journalist.id), journalist_json
    )


@bp.get("/journalists/<int:journalist_id>")
@api_roles(EXPORTERS)
def journalist(journalist_id: int) -> Response:
    found = audience.get_journalist(request_session(), journalist_id)
    data = journalist_json(found)
    data["subscriptions"] = [subscription_json(s) for s in found.subscriptions]
    return jsonify(data)


@bp.post("/journalists")
@api_roles(EDITORS)
def create_journalist() -> tuple[Response, int]:
    data = _json_body()
    basis_raw = _str_field(data, "lawful_basis", limit=40) or LawfulBasis.LEGITIMATE_INTEREST.value
    try:
        basis = LawfulBasis(basis_raw)
    except ValueError:
        raise ValidationFailed("lawful_basis is not one of the allowed values") from None
    details = audience.JournalistDetails(
        email=_str_field(data, "email", required=True, limit=320),
        name=_str_field(data, "name", limit=200),
        outlet=_str_field(data, "outlet", limit=200),
        role=_str_field(data, "role", limit=120),
        country=_str_field(data, "country", limit=2),
        language=_str_field(data, "language", limit=12),
        lawful_basis=basis,
    )
    created = audience.save_journalist(request_session(), details)
    return jsonify(journalist_json(created)), 201


@bp.get("/subscriptions")
@api_roles(EXPORTERS)
def subscriptions() -> Response:
    stmt = select(Subscription).order_by(Subscription.id)
    journalist_id = _optional_int("journalist_id")
    beat_id = _optional_int("beat_id")
    status = _enum_arg("status", SubscriptionStatus)
    if journalist_id is not None:
        stmt = stmt.where(Subscription.journalist_id == journalist_id)
    if beat_id is not None:
        stmt = stmt.where(Subscription.beat_id == beat_id)
    if status is not None:
        stmt = stmt.where(Subscription.status == status)
    return _paginate(request_session(), stmt, subscription_json)


@bp.post("/subscriptions")
@api_roles(EDITORS)
def create_subscription() -> tuple[Response, int]:
    """Staff-entered subscription (lawful basis is the journalist's; no confirmation mail)."""
    data = _json_body()
    session = request_session()
    found = audience.get_journalist(session, _int_field(data, "journalist_id"))
    beat = session.get(Beat, _int_field(data, "beat_id"))
    if beat is None:
        raise NotFound("No such beat.")
    if found.erased_at is not None:
        raise Conflict("This journalist was erased.")
    if audience.is_suppressed(session, found.email_normalized):
        raise Conflict("This address is on the do-not-contact list.")
    existing = session.scalar(
        select(Subscription).where(
            Subscription.journalist_id == found.id, Subscription.beat_id == beat.id
        )
    )
    if existing is not None:
        raise Conflict("The journalist already has a subscription to this beat.")
    now = utcnow()
    subscription = Subscription(
        journalist_id=found.id,
        beat_id=beat.id,
        status=SubscriptionStatus.CONFIRMED,
        source="api",
        consent_at=now,
        consent_method=f"api:{api_user().email}"[:60],
        confirmed_at=now,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    return jsonify(subscription_json(subscription)), 201


@bp.get("/sends")
@api_roles(ALL_STAFF)
def sends() -> Response:
    stmt = select(Send).order_by(Send.id.desc())
    status = _enum_arg("status", SendStatus)
    if status is not None:
        stmt = stmt.where(Send.status == status)
    release_id = _optional_int("release_id")
    if release_id is not None:
        stmt = stmt.where(Send.release_id == release_id)
    return _paginate(request_session(), stmt, send_json)


@bp.get("/sends/<int:send_id>")
@api_roles(ALL_STAFF)
def send(send_id: int) -> Response:
    session = request_session()
    found = session.get(Send, send_id)
    if found is None:
        raise NotFound("No such send.")
    counts = dict.fromkeys((s.value for s in DeliveryStatus), 0)
    for status, n in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.send_id == send_id)
        .group_by(Delivery.status)
    ).all():
        counts[getattr(status, "value", str(status))] = int(n)
    data = send_json(found)
    data["deliveries"] = counts
    return jsonify(data)


@bp.get("/reports/releases/<int:release_id>")
@api_roles(ALL_STAFF)
def release_report(release_id: int) -> Response:
    report = reports.release_report(request_session(), release_id)
    return jsonify(
        release_id=release_id,
        totals=report.totals,
        events=report.events,
        links=[
            {
                "link_id": link.link_id,
                "url": link.url,
                "human_clicks": link.human_clicks,
                "human_clickers": link.human_clickers,
                "bot_clicks": link.bot_clicks,
            }
            for link in report.links
        ],
        by_beat=[{"beat": name, **values} for name, values in report.by_beat],
        by_outlet=[{"outlet": name, **values} for name, values in report.by_outlet],
        by_list=[{"media_list": name, **values} for name, values in report.by_list],
        definitions=reports.METRIC_DEFINITIONS,
        timeline=[
            {
                "starts_at": _iso(b.starts_at),
                "human_opens": b.human_opens,
                "machine_opens": b.machine_opens,
                "human_clicks": b.human_clicks,
                "bot_clicks": b.bot_clicks,
            }
            for b in report.timeline
        ],
    )


@bp.get("/reports/dashboard")
@api_roles(ALL_STAFF)
def dashboard() -> Response:
    days = _int_arg("days", 30, low=1, high=365)
    board = health.dashboard(request_session(), days=days)
    return jsonify(
        days=[
            {
                "day": d.day.isoformat(),
                "sent": d.sent,
                "bounced": d.bounced,
                "complaints": d.complaints,
            }
            for d in board.days
        ],
        sent=board.sent,
        bounced=board.bounced,
        complaints=board.complaints,
        bounce_rate=board.bounce_rate,
        complaint_rate=board.complaint_rate,
        warnings=[{"level": level, "message": message} for level, message in board.warnings],
    )


@bp.get("/reports/journalists/<int:journalist_id>")
@api_roles(EXPORTERS)
def journalist_report(journalist_id: int) -> Response:
    history = journalist_history(request_session(), journalist_id)
    return jsonify(
        journalist_id=journalist_id,
        deliveries=[
            {
                "release_id": r.release_id,
                "title": r.title,
                "status": r.status,
                "sent_at": _iso(r.sent_at),
                "human_opens": r.human_opens,
                "machine_opens": r.machine_opens,
                "human_clicks": r.human_clicks,
                "bot_clicks": r.bot_clicks,
                "first_human_open_at": _iso(r.first_human_open_at),
                "bounce": r.bounced or None,
                "complained": r.complained,
            }
            for r in history.rows
        ],
    )
