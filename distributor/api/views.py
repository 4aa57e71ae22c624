"""JSON resources: releases, journalists, subscriptions, sends and reports.

Each view declares its contract (``distributor.api.contract.operation``): the query and body it
takes and the response it gives, as models from ``distributor.api.schemas``. The contract
validates the request before the view runs and writes ``/api/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, jsonify
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from distributor.api import contract
from distributor.api import schemas as out
from distributor.api.auth import api_open, api_roles, api_user, check_token, json_error
from distributor.api.contract import operation
from distributor.api.embargo import bp as embargo_bp
from distributor.audience import services as audience
from distributor.audience.models import (
    Beat,
    Journalist,
    MediaList,
    Subscription,
    SubscriptionStatus,
)
from distributor.db import request_session, utcnow
from distributor.delivery.models import Delivery, DeliveryStatus, Send
from distributor.errors import Conflict, DomainError, NotFound
from distributor.extensions import csrf
from distributor.mail.relay_check import current_relay_check
from distributor.releases import services as release_services
from distributor.releases.models import Release
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
P = TypeVar("P", bound=out.Page[Any])


@bp.url_value_preprocessor
def _ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    # An id beyond what the database stores names nothing (and would overflow the driver).
    for value in (values or {}).values():
        if isinstance(value, int) and value > out.MAX_ID:
            raise NotFound("Not found.")


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError) -> Response:
    return json_error(exc.status_code, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    # Keep the exception's own headers: ``Allow`` on 405 (RFC 9110 section 15.5.6).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return json_error(exc.code or 500, exc.description or exc.name, **headers)


# -- helpers ---------------------------------------------------------------------------------


def _paginate(
    model: type[P],
    session: Session,
    stmt: Select[Any],
    render: Callable[[Any], BaseModel],
    query: out.PageQuery,
) -> P:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.limit(query.per_page).offset((query.page - 1) * query.per_page))
    return model(
        items=[render(row) for row in rows],
        page=query.page,
        per_page=query.per_page,
        total=total,
        next_page=query.page + 1 if query.page * query.per_page < total else None,
    )


# -- renderers -------------------------------------------------------------------------------


def release_json(r: Release) -> out.Release:
    return out.Release(
        id=r.id,
        title=r.title,
        slug=r.slug,
        summary=r.summary,
        status=r.status,
        kind=r.kind.name if r.kind else None,
        embargo_until=r.embargo_until,
        published_at=r.published_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _journalist_fields(j: Journalist) -> dict[str, Any]:
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
        "lawful_basis": j.lawful_basis,
        "created_at": j.created_at,
        "erased_at": j.erased_at,
    }


def journalist_json(j: Journalist) -> out.Journalist:
    return out.Journalist(**_journalist_fields(j))


def subscription_json(s: Subscription) -> out.Subscription:
    return out.Subscription(
        id=s.id,
        journalist_id=s.journalist_id,
        beat_id=s.beat_id,
        beat=s.beat.name if s.beat else None,
        status=s.status,
        source=s.source,
        consent_at=s.consent_at,
        confirmed_at=s.confirmed_at,
        unsubscribed_at=s.unsubscribed_at,
        created_at=s.created_at,
    )


def media_list_json(m: MediaList) -> out.MediaList:
    return out.MediaList(id=m.id, name=m.name)


def beat_json(b: Beat) -> out.Beat:
    return out.Beat(id=b.id, name=b.name, slug=b.slug, is_public=b.is_public)


def _send_fields(s: Send) -> dict[str, Any]:
    return {
        "id": s.id,
        "release_id": s.release_id,
        "status": s.status,
        "scheduled_for": s.scheduled_for,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "recipient_count": s.recipient_count,
    }


def send_json(s: Send) -> out.Send:
    return out.Send(**_send_fields(s))


# -- endpoints -------------------------------------------------------------------------------


@bp.get("/openapi.json")
@api_open
@contract.exempt
def openapi() -> Response:
    return jsonify(contract.document())


@bp.get("/me")
@api_roles(ALL_STAFF)
@operation("me", "The token's user", tag="account", response=out.Me)
def me() -> out.Me:
    user = api_user()
    return out.Me(id=user.id, email=user.email, name=user.name, role=user.role.value)


@bp.get("/releases")
@api_roles(ALL_STAFF)
@operation(
    "listReleases",
    "Releases, newest first",
    tag="releases",
    query=out.ReleaseQuery,
    response=out.Page[out.Release],
)
def releases(query: out.ReleaseQuery) -> out.Page[out.Release]:
    stmt = select(Release).order_by(Release.id.desc())
    if query.status is not None:
        stmt = stmt.where(Release.status == query.status)
    return _paginate(out.Page[out.Release], request_session(), stmt, release_json, query)


@bp.get("/releases/<int:release_id>")
@api_roles(ALL_STAFF)
@operation("getRelease", "One release", tag="releases", response=out.ReleaseDetail)
def release(release_id: int) -> out.ReleaseDetail:
    found = request_session().get(Release, release_id)
    if found is None:
        raise NotFound("No such release.")
    return _release_detail(found)


def _release_detail(found: Release) -> out.ReleaseDetail:
    return out.ReleaseDetail(
        **release_json(found).model_dump(),
        beats=[b.name for b in found.beats],
        media_lists=[media_list_json(m) for m in found.media_lists],
    )


@bp.put("/releases/<int:release_id>/media-lists")
@api_roles(ALL_STAFF)
@operation(
    "chooseReleaseMediaLists",
    "Choose the media lists a send of the release goes to, besides its beats",
    tag="releases",
    body=out.MediaListChoice,
    response=out.ReleaseDetail,
)
def choose_media_lists(release_id: int, body: out.MediaListChoice) -> out.ReleaseDetail:
    """Choose the media lists a send of the release goes to (replaces the earlier choice)."""
    session = request_session()
    found = session.get(Release, release_id)
    if found is None:
        raise NotFound("No such release.")
    release_services.choose_media_lists(
        session, found, editor=api_user(), media_list_ids=list(body.media_list_ids)
    )
    return _release_detail(found)


@bp.get("/media-lists")
@api_roles(ALL_STAFF)
@operation(
    "listMediaLists",
    "Media lists",
    tag="audience",
    query=out.PageQuery,
    response=out.Page[out.MediaList],
)
def media_lists(query: out.PageQuery) -> out.Page[out.MediaList]:
    stmt = select(MediaList).order_by(MediaList.name, MediaList.id)
    return _paginate(out.Page[out.MediaList], request_session(), stmt, media_list_json, query)


@bp.get("/beats")
@api_roles(ALL_STAFF)
@operation("listBeats", "Beats", tag="audience", query=out.PageQuery, response=out.Page[out.Beat])
def beats(query: out.PageQuery) -> out.Page[out.Beat]:
    stmt = select(Beat).order_by(Beat.name, Beat.id)
    return _paginate(out.Page[out.Beat], request_session(), stmt, beat_json, query)


@bp.get("/journalists")
@api_roles(EXPORTERS)
@operation(
    "listJournalists",
    "Journalists, optionally searched",
    tag="audience",
    query=out.JournalistQuery,
    response=out.Page[out.Journalist],
)
def journalists(query: out.JournalistQuery) -> out.Page[out.Journalist]:
    stmt = audience.journalist_query(q=query.q, outlet_id=query.outlet_id)
    stmt = stmt.order_by(None).order_by(Journalist.id)
    return _paginate(out.Page[out.Journalist], request_session(), stmt, journalist_json, query)


@bp.get("/journalists/<int:journalist_id>")
@api_roles(EXPORTERS)
@operation(
    "getJournalist",
    "One journalist with subscriptions",
    tag="audience",
    response=out.JournalistDetail,
)
def journalist(journalist_id: int) -> out.JournalistDetail:
    found = audience.get_journalist(request_session(), journalist_id)
    return out.JournalistDetail(
        **_journalist_fields(found),
        subscriptions=[subscription_json(s) for s in found.subscriptions],
    )


@bp.post("/journalists")
@api_roles(EDITORS)
@operation(
    "createJournalist",
    "Add a journalist (editors and admins)",
    tag="audience",
    body=out.NewJournalist,
    response=out.Journalist,
    status=201,
)
def create_journalist(body: out.NewJournalist) -> out.Journalist:
    details = audience.JournalistDetails(
        email=body.email,
        name=body.name or "",
        outlet=body.outlet or "",
        role=body.role or "",
        country=body.country or "",
        language=body.language or "",
        lawful_basis=body.lawful_basis,
    )
    created = audience.save_journalist(request_session(), details, relay=current_relay_check())
    return journalist_json(created)


@bp.get("/subscriptions")
@api_roles(EXPORTERS)
@operation(
    "listSubscriptions",
    "Subscriptions",
    tag="audience",
    query=out.SubscriptionQuery,
    response=out.Page[out.Subscription],
)
def subscriptions(query: out.SubscriptionQuery) -> out.Page[out.Subscription]:
    stmt = select(Subscription).order_by(Subscription.id)
    if query.journalist_id is not None:
        stmt = stmt.where(Subscription.journalist_id == query.journalist_id)
    if query.beat_id is not None:
        stmt = stmt.where(Subscription.beat_id == query.beat_id)
    if query.status is not None:
        stmt = stmt.where(Subscription.status == query.status)
    return _paginate(out.Page[out.Subscription], request_session(), stmt, subscription_json, query)


@bp.post("/subscriptions")
@api_roles(EDITORS)
@operation(
    "createSubscription",
    "Subscribe a journalist to a beat (editors and admins)",
    tag="audience",
    body=out.NewSubscription,
    response=out.Subscription,
    status=201,
)
def create_subscription(body: out.NewSubscription) -> out.Subscription:
    """Staff-entered subscription (lawful basis is the journalist's; no confirmation mail)."""
    session = request_session()
    found = audience.get_journalist(session, body.journalist_id)
    beat = session.get(Beat, body.beat_id)
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
    return subscription_json(subscription)


@bp.get("/sends")
@api_roles(ALL_STAFF)
@operation(
    "listSends",
    "Sends, newest first",
    tag="sending",
    query=out.SendQuery,
    response=out.Page[out.Send],
)
def sends(query: out.SendQuery) -> out.Page[out.Send]:
    stmt = select(Send).order_by(Send.id.desc())
    if query.status is not None:
        stmt = stmt.where(Send.status == query.status)
    if query.release_id is not None:
        stmt = stmt.where(Send.release_id == query.release_id)
    return _paginate(out.Page[out.Send], request_session(), stmt, send_json, query)


@bp.get("/sends/<int:send_id>")
@api_roles(ALL_STAFF)
@operation(
    "getSend",
    "One send with its deliveries counted by status ("
    + ", ".join(s.value for s in DeliveryStatus)
    + ")",
    tag="sending",
    response=out.SendDetail,
)
def send(send_id: int) -> out.SendDetail:
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
    return out.SendDetail(**_send_fields(found), deliveries=counts)


@bp.get("/reports/releases/<int:release_id>")
@api_roles(ALL_STAFF)
@operation(
    "releaseReport",
    "A release's delivery and engagement report",
    tag="reports",
    response=out.ReleaseReport,
)
def release_report(release_id: int) -> out.ReleaseReport:
    report = reports.release_report(request_session(), release_id)
    return out.ReleaseReport(
        release_id=release_id,
        totals=out.Metrics(**report.totals),
        events=out.Events(**report.events),
        links=[
            out.LinkClicks(
                link_id=link.link_id,
                url=link.url,
                human_clicks=link.human_clicks,
                human_clickers=link.human_clickers,
                bot_clicks=link.bot_clicks,
            )
            for link in report.links
        ],
        by_beat=[{"beat": name, **values} for name, values in report.by_beat],
        by_outlet=[{"outlet": name, **values} for name, values in report.by_outlet],
        by_list=[{"media_list": name, **values} for name, values in report.by_list],
        definitions=reports.METRIC_DEFINITIONS,
        timeline=[
            out.TimelineBucket(
                starts_at=b.starts_at,
                human_opens=b.human_opens,
                machine_opens=b.machine_opens,
                human_clicks=b.human_clicks,
                bot_clicks=b.bot_clicks,
            )
            for b in report.timeline
        ],
    )


@bp.get("/reports/dashboard")
@api_roles(ALL_STAFF)
@operation(
    "dashboard",
    "Daily volume, bounce and complaint rates with warnings",
    tag="reports",
    query=out.DashboardQuery,
    response=out.Dashboard,
)
def dashboard(query: out.DashboardQuery) -> out.Dashboard:
    board = health.dashboard(request_session(), days=query.days)
    return out.Dashboard(
        days=[
            out.DashboardDay(day=d.day, sent=d.sent, bounced=d.bounced, complaints=d.complaints)
            for d in board.days
        ],
        sent=board.sent,
        bounced=board.bounced,
        complaints=board.complaints,
        bounce_rate=board.bounce_rate,
        complaint_rate=board.complaint_rate,
        warnings=[out.Warning(level=level, message=message) for level, message in board.warnings],
    )


@bp.get("/reports/journalists/<int:journalist_id>")
@api_roles(EXPORTERS)
@operation(
    "journalistReport",
    "A journalist's engagement history",
    tag="reports",
    response=out.JournalistReport,
)
def journalist_report(journalist_id: int) -> out.JournalistReport:
    history = journalist_history(request_session(), journalist_id)
    return out.JournalistReport(
        journalist_id=journalist_id,
        deliveries=[
            out.JournalistDelivery(
                release_id=r.release_id,
                title=r.title,
                status=r.status,
                sent_at=r.sent_at,
                human_opens=r.human_opens,
                machine_opens=r.machine_opens,
                human_clicks=r.human_clicks,
                bot_clicks=r.bot_clicks,
                first_human_open_at=r.first_human_open_at,
                bounce=r.bounced or None,
                complained=r.complained,
            )
            for r in history.rows
        ],
    )
