from __future__ import annotations

import dataclasses

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from distributor.db import request_session
from distributor.devinbox import services
from distributor.security import admin_required, staff_required
from distributor.settings import current_settings
from distributor.tracking.links import without_tracking

bp = Blueprint("devinbox", __name__, url_prefix="/dev/inbox")


@bp.before_request
def _only_when_enabled() -> None:
    if not current_settings().dev_inbox_enabled:
        abort(404)


def _untracked_view(session: Session, raw: bytes) -> services.MessageView:
    # Reading a mail here must never count as the journalist opening or clicking it.
    view = services.parse_for_display(raw)
    return dataclasses.replace(
        view,
        html=without_tracking(session, view.html, is_html=True) if view.html else view.html,
        text=without_tracking(session, view.text, is_html=False) if view.text else view.text,
    )


@bp.get("/")
@staff_required
def index() -> str:
    session = request_session()
    return render_template(
        "staff/devinbox/index.html",
        messages=services.list_messages(session),
        total=services.count_messages(session),
    )


@bp.get("/<int:message_id>")
@staff_required
def show(message_id: int) -> str:
    session = request_session()
    message = services.get_message(session, message_id)
    return render_template(
        "staff/devinbox/show.html", message=message, view=_untracked_view(session, message.raw)
    )


@bp.get("/<int:message_id>/html")
@staff_required
def html(message_id: int) -> Response:
    """The HTML part alone, for the sandboxed preview iframe."""
    session = request_session()
    message = services.get_message(session, message_id)
    view = _untracked_view(session, message.raw)
    response = current_app.response_class(
        view.html or "<p>(no HTML part)</p>", mimetype="text/html"
    )
    # The mail's HTML is untrusted: no scripts, no same-origin access.
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
    )
    return response


@bp.get("/<int:message_id>/raw")
@staff_required
def raw(message_id: int) -> Response:
    message = services.get_message(request_session(), message_id)
    return current_app.response_class(
        message.raw,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f"attachment; filename=message-{message.id}.eml"},
    )


@bp.post("/clear")
@admin_required
def clear() -> Response:
    removed = services.clear_inbox(request_session())
    flash(f"Removed {removed} messages from the dev inbox.", "success")
    return redirect(url_for("devinbox.index"))
