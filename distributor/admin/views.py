from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from distributor.admin.dashboard import build_dashboard
from distributor.admin.forms import TestEmailForm
from distributor.admin.services import request_test_email
from distributor.db import request_session
from distributor.notifications.models import StaffMailKind
from distributor.notifications.services import recent_staff_mails
from distributor.security import admin_required, staff_required
from distributor.settings import current_settings

bp = Blueprint("admin", __name__, url_prefix="/staff")


@bp.get("/")
@staff_required
def home() -> str:
    """The staff dashboard."""
    from distributor.reports.definitions import RELEASE_FIGURES

    return render_template(
        "staff/home.html",
        board=build_dashboard(request_session(), current_user),
        release_figures=RELEASE_FIGURES,
    )


@bp.route("/test-email", methods=["GET", "POST"])
@admin_required
def test_email() -> str | Response:
    form = TestEmailForm()
    if not form.is_submitted():
        form.to_address.data = current_user.email
    if form.validate_on_submit():
        address = request_test_email(
            request_session(), to_address=form.to_address.data or "", requested_by=current_user
        )
        settings = current_settings()
        where = " It will appear in the dev inbox." if settings.dev_inbox_enabled else ""
        flash(f"Test email queued for {address}.{where}", "success")
        return redirect(url_for("admin.test_email"))
    recent = recent_staff_mails(
        request_session(), kinds=(StaffMailKind.TEST_EMAIL, StaffMailKind.RELEASE_TEST)
    )
    return render_template("staff/test_email.html", form=form, recent=recent)
