from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from werkzeug.wrappers import Response

from distributor.db import get_db
from distributor.security import public

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
