from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask import session as cookie
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from distributor.accounts import services, sessions
from distributor.accounts.forms import LoginForm, ToggleUserForm, UserForm
from distributor.accounts.models import Role, User
from distributor.db import request_session
from distributor.errors import NotFound
from distributor.extensions import limiter
from distributor.security import admin_required, public, staff_required

bp = Blueprint("accounts", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.home")


def _login_limit() -> str:
    return str(current_app.extensions["distributor.settings"].login_rate_limit)


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(
            request_session(), form.email.data or "", form.password.data or ""
        )
        if user is not None:
            # A fresh random session id per login: nothing set before it survives (fixation).
            cookie.clear()
            cookie["sid"] = sessions.start(
                request_session(), user, user_agent=request.user_agent.string
            )
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password, or the account is disabled.", "error")
    return render_template("staff/login.html", form=form)


@bp.post("/logout")
@staff_required
def logout() -> Response:
    sessions.revoke(request_session(), str(cookie.get("sid", "")))
    logout_user()
    cookie.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("accounts.login"))


@bp.get("/account")
@staff_required
def account() -> str:
    return render_template(
        "staff/account.html",
        live=sessions.live_sessions(request_session(), current_user.id),
        end_all=ToggleUserForm(),
    )


@bp.post("/account/sessions/end-all")
@staff_required
def end_all_sessions() -> Response:
    """Log out everywhere, this browser included."""
    if ToggleUserForm().validate_on_submit():
        sessions.revoke_all(request_session(), current_user.id)
        logout_user()
        cookie.clear()
        flash("Every session of your account has ended. Log in again.", "success")
        return redirect(url_for("accounts.login"))
    return redirect(url_for("accounts.account"))


@bp.route("/staff/users", methods=["GET", "POST"])
@admin_required
def users() -> str | Response:
    session = request_session()
    form = UserForm()
    if form.validate_on_submit():
        user = services.create_user(
            session,
            email=form.email.data or "",
            name=form.name.data or "",
            password=form.password.data or "",
            role=Role(form.role.data),
        )
        flash(f"Created {user.email} ({user.role.label}).", "success")
        return redirect(url_for("accounts.users"))
    return render_template(
        "staff/users.html", users=services.list_users(session), form=form, toggle=ToggleUserForm()
    )


@bp.post("/staff/users/<int:user_id>/active")
@admin_required
def toggle_active(user_id: int) -> Response:
    session = request_session()
    form = ToggleUserForm()
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    if form.validate_on_submit():
        if user.id == current_user.id:
            flash("You cannot disable your own account.", "error")
        else:
            services.set_active(session, user.email, is_active=not user.is_active)
            flash(f"{user.email} is now {'active' if user.is_active else 'disabled'}.", "success")
    return redirect(url_for("accounts.users"))
