from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask import session as cookie
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from distributor.accounts import mfa, services, sessions
from distributor.accounts.forms import (
    LoginForm,
    PasswordChangeForm,
    ToggleUserForm,
    TotpForm,
    UserForm,
)
from distributor.accounts.models import Role, User
from distributor.db import request_session
from distributor.errors import NotFound, ValidationFailed
from distributor.extensions import limiter
from distributor.logs import security_event
from distributor.security import admin_required, public, staff_required
from distributor.settings import current_settings

bp = Blueprint("accounts", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.home")


def _login_limit() -> str:
    return str(current_settings().login_rate_limit)


MFA_PENDING_SECONDS = 300


def _start_session(user: User) -> None:
    # A fresh random session id per login: nothing set before it survives (fixation).
    cookie.clear()
    cookie["sid"] = sessions.start(request_session(), user, user_agent=request.user_agent.string)
    login_user(user)
    security_event("login_succeeded", user_id=user.id, ip=request.remote_addr)


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        settings = current_settings()
        user = services.authenticate(
            request_session(),
            form.email.data or "",
            form.password.data or "",
            max_failures=settings.login_max_failures,
            lockout=dt.timedelta(minutes=settings.login_lockout_minutes),
            ip=request.remote_addr,
        )
        if user is not None and user.totp_secret:
            # The password was right; the session starts only after the second factor.
            cookie.clear()
            cookie["mfa_user"] = user.id
            cookie["mfa_since"] = int(time.time())
            cookie["mfa_next"] = _safe_next(request.args.get("next"))
            return redirect(url_for("accounts.login_mfa"))
        if user is not None:
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password, or the account is disabled or locked.", "error")
    return render_template("staff/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login_mfa() -> str | Response:
    """The second step of a login with two-factor authentication (RFC 6238 TOTP)."""
    user_id = cookie.get("mfa_user")
    since = int(cookie.get("mfa_since", 0))
    user = request_session().get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active or time.time() - since > MFA_PENDING_SECONDS:
        cookie.clear()
        flash("Log in again.", "error")
        return redirect(url_for("accounts.login"))
    form = TotpForm()
    if form.validate_on_submit():
        if mfa.verify(request_session(), user, form.code.data or ""):
            target = str(cookie.get("mfa_next", "")) or url_for("admin.home")
            _start_session(user)
            return redirect(_safe_next(target))
        flash("That code is not right, or was already used.", "error")
    return render_template("staff/login_code.html", form=form)


@bp.post("/logout")
@staff_required
def logout() -> Response:
    security_event("logout", user_id=current_user.id)
    sessions.revoke(request_session(), str(cookie.get("sid", "")))
    logout_user()
    cookie.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("accounts.login"))


@bp.route("/account", methods=["GET", "POST"])
@staff_required
def account() -> str | Response:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                request_session(),
                current_user,
                current=form.current.data or "",
                new=form.new.data or "",
                keep_session=str(cookie.get("sid", "")),
            )
        except ValidationFailed as exc:
            form.new.errors = [*form.new.errors, exc.message]
        else:
            flash("Your password is changed; every other session has ended.", "success")
            return redirect(url_for("accounts.account"))
    return render_template(
        "staff/account.html",
        live=sessions.live_sessions(request_session(), current_user.id),
        end_all=ToggleUserForm(),
        password_form=form,
    )


@bp.route("/account/two-factor", methods=["GET", "POST"])
@staff_required
def mfa_setup() -> str | Response:
    """Set up TOTP: the secret waits in the signed session until a code from it is shown."""
    if current_user.totp_secret:
        flash("Two-factor login is already on for your account.", "success")
        return redirect(url_for("accounts.account"))
    secret = str(cookie.get("mfa_secret") or mfa.new_secret())
    cookie["mfa_secret"] = secret
    form = TotpForm()
    if form.validate_on_submit():
        try:
            mfa.enable(request_session(), current_user, secret, form.code.data or "")
        except ValidationFailed as exc:
            form.code.errors = [*form.code.errors, exc.message]
        else:
            cookie.pop("mfa_secret", None)
            flash("Two-factor login is on.", "success")
            return redirect(url_for("accounts.account"))
    return render_template(
        "staff/mfa_setup.html",
        form=form,
        secret=secret,
        uri=mfa.provisioning_uri(secret, current_user.email, current_settings().org_name),
    )


MFA_EXEMPT = {"accounts.mfa_setup", "accounts.logout", "accounts.login", "static"}


@bp.before_app_request
def _admins_need_mfa() -> Response | None:
    """With REQUIRE_ADMIN_MFA, an admin without TOTP can only set it up or log out."""
    if not current_settings().require_admin_mfa or request.endpoint in MFA_EXEMPT:
        return None
    if (
        current_user.is_authenticated
        and current_user.role == Role.ADMIN
        and not current_user.totp_secret
    ):
        flash("Admins must set up two-factor login first.", "error")
        return redirect(url_for("accounts.mfa_setup"))
    return None


@bp.post("/account/sessions/end-all")
@staff_required
def end_all_sessions() -> Response:
    """Log out everywhere, this browser included."""
    if ToggleUserForm().validate_on_submit():
        sessions.revoke_all(request_session(), current_user.id)
        security_event("sessions_revoked", user_id=current_user.id)
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
