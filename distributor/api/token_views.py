"""The staff page where each user creates and revokes their own API tokens."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from distributor.api import services
from distributor.db import request_session
from distributor.errors import ValidationFailed
from distributor.security import staff_required

bp = Blueprint("api_tokens", __name__, url_prefix="/staff/api-tokens")


@bp.route("/", methods=["GET", "POST"])
@staff_required
def index() -> str | tuple[str, int]:
    session = request_session()
    secret = None
    error = None
    status = 200
    if request.method == "POST":
        try:
            _token, secret = services.create_token(
                session, current_user, request.form.get("name", "")
            )
        except ValidationFailed as exc:
            error, status = exc.message, 422
    tokens = services.list_tokens(session, current_user)
    return render_template(
        "staff/api/tokens.html", tokens=tokens, secret=secret, error=error
    ), status


@bp.post("/<int:token_id>/revoke")
@staff_required
def revoke(token_id: int) -> Response:
    token = services.revoke_token(request_session(), current_user, token_id)
    flash(f"Token “{token.name}” revoked: it no longer works.", "success")
    return redirect(url_for("api_tokens.index"))
