from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from werkzeug.wrappers import Response

from distributor.db import get_db, request_session
from distributor.health import metrics as metrics_module
from distributor.security import public
from distributor.settings import current_settings
from distributor.tracking.views import event_buffer

bp = Blueprint("health", __name__)


def _check_database() -> dict[str, object]:
    started = time.perf_counter()
    try:
        with get_db().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not reachable"
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_broker() -> dict[str, object]:
    celery = current_app.extensions["celery"]
    started = time.perf_counter()
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    transport = celery.conf.broker_url.split(":", 1)[0]
    return {
        "ok": True,
        "transport": transport,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


@bp.get("/healthz")
@public
def healthz() -> tuple[Response, int]:
    checks = {"database": _check_database(), "broker": _check_broker()}
    ok = all(c["ok"] for c in checks.values())
    return jsonify(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503


@bp.get("/metrics")
@public
def metrics() -> Response:
    """Prometheus metrics, for a bearer token (METRICS_TOKEN) or else loopback only."""
    settings = current_settings()
    allowed = metrics_module.may_scrape(
        settings,
        remote_addr=request.remote_addr,
        authorization=request.headers.get("Authorization", ""),
        is_forwarded=bool(
            request.headers.get("Forwarded") or request.headers.get("X-Forwarded-For")
        ),
    )
    if not allowed:
        if settings.metrics_token:
            abort(
                Response("A valid bearer token is required.\n", 401, {"WWW-Authenticate": "Bearer"})
            )
        abort(403)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.get("distributor.metrics_cache")
    buffer = event_buffer(app)
    if cache is None:
        cache = app.extensions.setdefault(
            "distributor.metrics_cache",
            metrics_module.MetricsCache(buffer.client if buffer is not None else None),
        )
    body = metrics_module.render(request_session(), settings, buffer, cache)
    response = Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST})
    response.headers["Cache-Control"] = "no-store"
    return response
