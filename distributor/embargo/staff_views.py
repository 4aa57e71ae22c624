"""Staff pages: embargo terms, a release's rooms, a journalist's embargo standing."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from distributor.audience.models import Journalist
from distributor.db import request_session, utcnow
from distributor.embargo import notices, reports, services
from distributor.embargo.models import EmbargoAccess, EmbargoTerms, Standing
from distributor.errors import NotFound, ValidationFailed
from distributor.releases.models import Release
from distributor.reports.csv_export import csv_response
from distributor.security import EDITORS, roles_required, staff_required
from distributor.settings import current_settings

bp = Blueprint("embargo", __name__, url_prefix="/staff")
editor_required = roles_required(EDITORS)


def _release(release_id: int) -> Release:
    release = request_session().get(Release, release_id)
    if release is None:
        raise NotFound("Release not found")
    return release


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


# -- terms -----------------------------------------------------------------------------------


@bp.get("/embargo/terms")
@editor_required
def terms() -> str:
    session = request_session()
    versions = session.scalars(select(EmbargoTerms).order_by(EmbargoTerms.version.desc())).all()
    return render_template("staff/embargo/terms.html", versions=versions)


@bp.post("/embargo/terms")
@editor_required
def publish_terms() -> Response:
    try:
        terms = services.publish_terms(
            request_session(),
            summary=request.form.get("summary", ""),
            body=request.form.get("body", ""),
            by=current_user,
            now=utcnow(),
        )
    except ValidationFailed as exc:
        flash(exc.message, "error")
        return redirect(url_for("embargo.terms"))
    flash(f"Embargo terms version {terms.version} published.", "success")
    return redirect(url_for("embargo.terms"))


@bp.get("/embargo/acceptances.csv")
@editor_required
def acceptances_csv() -> Response:
    rows = reports.acceptances(request_session())
    return csv_response(
        "embargo-terms-acceptances.csv",
        ["journalist_id", "email", "terms_version", "accepted_at", "release_id"],
        [
            [r.journalist_id, r.email, r.terms_version, _iso(r.accepted_at), r.release_id or ""]
            for r in rows
        ],
    )


@bp.get("/embargo/standings.csv")
@editor_required
def standings_csv() -> Response:
    rows = reports.standings(request_session())
    return csv_response(
        "embargo-standings.csv",
        ["journalist_id", "email", "standing", "probation_until", "reason", "updated_at"],
        [
            [
                r.journalist_id,
                r.email,
                r.standing,
                _iso(r.probation_until),
                r.reason,
                _iso(r.updated_at),
            ]
            for r in rows
        ],
    )


# -- a release's rooms -----------------------------------------------------------------------


@bp.get("/releases/<int:release_id>/embargo")
@staff_required
def release_rooms(release_id: int) -> str:
    session = request_session()
    release = _release(release_id)
    now = utcnow()
    return render_template(
        "staff/embargo/release.html",
        release=release,
        options=services.options_for(session, release_id),
        terms=services.current_terms(session),
        rows=reports.room_rows(session, release_id),
        changes=services.release_changes(session, release),
        is_under_embargo=services.is_under_embargo(release, now),
        can_edit=current_user.role in EDITORS,
        log=reports.access_log(session, release_id=release_id)[-50:],
    )


@bp.post("/releases/<int:release_id>/embargo/options")
@editor_required
def release_options(release_id: int) -> Response:
    try:
        services.set_options(
            request_session(),
            release_id,
            requires_terms=request.form.get("requires_terms") == "yes",
            sends_lift_note=request.form.get("sends_lift_note") == "yes",
            now=utcnow(),
        )
    except ValidationFailed as exc:
        flash(exc.message, "error")
    else:
        flash("Embargo options saved.", "success")
    return redirect(url_for("embargo.release_rooms", release_id=release_id))


def _journalist_arg() -> int | None:
    raw = request.form.get("journalist_id", "")
    return int(raw) if raw.isdigit() else None


@bp.post("/releases/<int:release_id>/embargo/revoke")
@editor_required
def revoke(release_id: int) -> Response:
    _release(release_id)
    journalist_id = _journalist_arg()
    count = services.revoke(
        request_session(),
        release_id,
        journalist_id=journalist_id,
        reason=request.form.get("reason", "").strip() or f"revoked by {current_user.email}",
        now=utcnow(),
    )
    flash(f"{count} embargo link{'' if count == 1 else 's'} revoked.", "success")
    return redirect(url_for("embargo.release_rooms", release_id=release_id))


@bp.post("/releases/<int:release_id>/embargo/restore")
@editor_required
def restore(release_id: int) -> Response:
    journalist_id = _journalist_arg()
    if journalist_id is None:
        raise NotFound("Journalist not found")
    try:
        services.restore(request_session(), release_id, journalist_id, utcnow())
    except ValidationFailed as exc:
        flash(exc.message, "error")
    else:
        flash("Embargo link restored.", "success")
    return redirect(url_for("embargo.release_rooms", release_id=release_id))


@bp.post("/releases/<int:release_id>/embargo/correction")
@editor_required
def correction(release_id: int) -> Response:
    count = notices.queue_correction(request_session(), release_id, utcnow())
    flash(f"Correction queued for {count} journalist{'' if count == 1 else 's'}.", "success")
    return redirect(url_for("embargo.release_rooms", release_id=release_id))


@bp.get("/releases/<int:release_id>/embargo/rooms.csv")
@editor_required
def rooms_csv(release_id: int) -> Response:
    _release(release_id)
    rows = reports.room_rows(request_session(), release_id)
    return csv_response(
        f"release-{release_id}-embargo-rooms.csv",
        [
            "journalist_id",
            "name",
            "email",
            "link",
            "delivery",
            "granted_at",
            "revoked_at",
            "terms_version",
            "accepted_at",
            "entered_at",
            "views",
            "last_view_at",
            "downloads",
        ],
        [
            [
                r.journalist_id,
                r.name,
                r.email,
                r.status,
                r.delivery_status,
                _iso(r.granted_at),
                _iso(r.revoked_at),
                r.accepted_version or "",
                _iso(r.accepted_at),
                _iso(r.entered_at),
                r.views,
                _iso(r.last_view_at),
                "; ".join(r.downloads),
            ]
            for r in rows
        ],
    )


@bp.get("/releases/<int:release_id>/embargo/log.csv")
@editor_required
def log_csv(release_id: int) -> Response:
    _release(release_id)
    rows = reports.access_log(request_session(), release_id=release_id)
    return csv_response(
        f"release-{release_id}-embargo-log.csv",
        ["occurred_at", "release_id", "journalist_id", "email", "what", "detail"],
        [
            [_iso(r.occurred_at), r.release_id, r.journalist_id, r.email, r.kind, r.detail]
            for r in rows
        ],
    )


# -- a journalist's standing -----------------------------------------------------------------


def _journalist(journalist_id: int) -> Journalist:
    journalist = request_session().get(Journalist, journalist_id)
    if journalist is None or journalist.erased_at is not None:
        raise NotFound("Journalist not found")
    return journalist


@bp.get("/journalists/<int:journalist_id>/embargo")
@staff_required
def journalist_standing(journalist_id: int) -> str:
    session = request_session()
    journalist = _journalist(journalist_id)
    return render_template(
        "staff/embargo/journalist.html",
        journalist=journalist,
        standing=services.standing_of(session, journalist_id, utcnow()),
        Standing=Standing,
        breaches=services.breaches_of(session, journalist_id),
        acceptances=reports.acceptances(session, journalist_id),
        log=reports.access_log(session, journalist_id=journalist_id)[-50:],
        probation_days=current_settings().embargo_probation_days,
        can_edit=current_user.role in EDITORS,
        received=session.execute(
            select(Release.id, Release.title)
            .join(EmbargoAccess, EmbargoAccess.release_id == Release.id)
            .where(EmbargoAccess.journalist_id == journalist_id)
            .order_by(EmbargoAccess.created_at.desc())
        ).all(),
    )


def _date_arg(name: str) -> dt.datetime | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("Give the date as YYYY-MM-DD.") from None
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=current_settings().tz).astimezone(dt.UTC)


@bp.post("/journalists/<int:journalist_id>/embargo/standing")
@editor_required
def set_standing(journalist_id: int) -> Response:
    _journalist(journalist_id)
    try:
        standing = Standing(request.form.get("standing", ""))
        services.set_standing(
            request_session(),
            journalist_id,
            standing=standing,
            probation_until=_date_arg("probation_until"),
            reason=request.form.get("reason", ""),
            by=current_user,
            now=utcnow(),
        )
    except ValueError:
        flash("Choose allowed, not allowed or probation.", "error")
    except ValidationFailed as exc:
        flash(exc.message, "error")
    else:
        flash("Embargo standing saved.", "success")
    return redirect(url_for("embargo.journalist_standing", journalist_id=journalist_id))


@bp.post("/journalists/<int:journalist_id>/embargo/breach")
@editor_required
def record_breach(journalist_id: int) -> Response:
    _journalist(journalist_id)
    raw_release = request.form.get("release_id", "")
    try:
        breach = services.record_breach(
            request_session(),
            journalist_id,
            release_id=int(raw_release) if raw_release.isdigit() else None,
            note=request.form.get("note", ""),
            probation_days=current_settings().embargo_probation_days,
            by=current_user,
            now=utcnow(),
        )
    except ValidationFailed as exc:
        flash(exc.message, "error")
    else:
        flash(
            f"Breach recorded: {breach.links_revoked} open embargo link"
            f"{'' if breach.links_revoked == 1 else 's'} revoked, probation until "
            f"{breach.probation_until.astimezone(current_settings().tz):%d %b %Y}.",
            "success",
        )
    return redirect(url_for("embargo.journalist_standing", journalist_id=journalist_id))
