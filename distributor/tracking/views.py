"""Public tracking endpoints (pixel, click redirect) and the admin switch for tracking."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from distributor.db import request_session
from distributor.extensions import limiter
from distributor.organisation.services import ensure_organisation
from distributor.security import admin_required, public
from distributor.settings import current_settings
from distributor.tracking.buffer import RedisEventBuffer
from distributor.tracking.fastpath import NO_STORE, PIXEL_GIF, TrackingFastPath, get_tracker

bp = Blueprint("tracking", __name__)
# Pixel and click requests come in bursts from many mail clients behind few proxies (Apple,
# Google): a per-IP limit would refuse exactly the events we must not drop.
limiter.exempt(bp)


@bp.record_once
def _install_fast_path(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)
    app.wsgi_app = TrackingFastPath(app, app.wsgi_app)  # type: ignore[method-assign]


def event_buffer(app: Flask) -> RedisEventBuffer | None:
    """This process's Redis buffer, or None in write-through mode (no REDIS_URL)."""
    return get_tracker(app).buffer


def _record(kind: str, token: str, link_id: int | None) -> None:
    get_tracker(current_app._get_current_object()).record(  # type: ignore[attr-defined]
        kind, token, link_id, request.method, request.headers.get("User-Agent", "")
    )


@bp.route("/t/o/<token>.gif", methods=["GET"])
@public
def pixel(token: str) -> Response:
    _record("open", token, None)
    response = Response(PIXEL_GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Pragma"] = "no-cache"
    response.headers["Expires"] = "0"
    return response


@bp.route("/t/c/<token>/<int:link_id>", methods=["GET"])
@public
def click(token: str, link_id: int) -> Response:
    url = get_tracker(current_app._get_current_object()).resolve(token, link_id)  # type: ignore[attr-defined]
    if url is None:
        abort(404, "This link is not known. It may have been mistyped.")
    _record("click", token, link_id)
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/staff/tracking", methods=["GET", "POST"])
@admin_required
def settings_page() -> Response | str:
    session = request_session()
    org = ensure_organisation(session, current_settings())
    if request.method == "POST":
        org.is_tracking_enabled = request.form.get("enabled") == "1"
        flash(
            "Open and click tracking is on."
            if org.is_tracking_enabled
            else "Open and click tracking is off: nothing will be recorded.",
            "success",
        )
        return redirect(url_for("tracking.settings_page"))
    return render_template("staff/reports/tracking_settings.html", org=org)
