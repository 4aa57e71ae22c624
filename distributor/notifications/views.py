"""Each staff member chooses which workflow notifications they get by mail."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from distributor.accounts.models import Role
from distributor.db import request_session
from distributor.notifications import services
from distributor.notifications.forms import NotificationChoicesForm
from distributor.notifications.models import NotificationKind
from distributor.security import staff_required

bp = Blueprint("notifications", __name__, url_prefix="/staff/notifications")


def kinds_for(role: Role) -> list[NotificationKind]:
    """Press officers are never asked to review, so they are not offered that one."""
    if role is Role.PRESS_OFFICER:
        return [k for k in NotificationKind if k is not NotificationKind.SUBMITTED]
    return list(NotificationKind)


@bp.route("/", methods=["GET", "POST"])
@staff_required
def choices() -> str | Response:
    session = request_session()
    form = NotificationChoicesForm()
    offered = kinds_for(current_user.role)
    if form.validate_on_submit():
        values = {k.value for k in NotificationKind}
        ticked = {NotificationKind(v) for v in request.form.getlist("kind") if v in values}
        hidden = set(NotificationKind) - set(offered)
        wanted = (ticked & set(offered)) | (
            hidden - services.opted_out_kinds(session, current_user.id)
        )
        services.set_notification_choices(session, current_user.id, wanted)
        flash("Notification choices saved.", "success")
        return redirect(url_for("notifications.choices"), 303)
    muted = services.opted_out_kinds(session, current_user.id)
    return render_template(
        "staff/notifications/choices.html", form=form, offered=offered, muted=muted
    )
