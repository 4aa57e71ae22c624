"""The application factory: the one place where settings become a running app."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from distributor import headers, input_guard, security
from distributor.celery_app import init_celery
from distributor.db import Database, make_engine
from distributor.errors import DomainError
from distributor.extensions import csrf, limiter, login_manager
from distributor.logs import configure_logging, get_logger, redact_path
from distributor.mail.relay_check import CachedRelayCheck
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport, SMTPTransport, parse_smtp_urls
from distributor.settings import PROJECT_ROOT, Settings
from distributor.signals import connect_receivers
from distributor.storage import MediaStorage, storage_for

log = get_logger("distributor.web")


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    mail_transport: MailTransport | None = None,
    media_storage: MediaStorage | None = None,
    relay_check: CachedRelayCheck | None = None,
) -> Flask:
    """Build the Flask app (and its Celery app) from settings and optional collaborators."""
    settings = settings or Settings.from_env()
    configure_logging(settings)

    app = headers.CanonicalUrls(
        "distributor",
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "distributor" / "static"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Key rotation: sessions and CSRF tokens signed with an earlier key stay valid.
        SECRET_KEY_FALLBACKS=list(settings.signing_keys[1:]),
        WTF_CSRF_SECRET_KEY=list(reversed(settings.signing_keys)),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.is_production,
        # The cookie dies with the server-side record anyway (accounts/sessions.py); this only
        # stops browsers from keeping it beyond the absolute timeout.
        PERMANENT_SESSION_LIFETIME=settings.session_max_hours * 3600,
        PREFERRED_URL_SCHEME="https" if settings.public_base_url.startswith("https") else "http",
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=settings.limiter_storage_uri,
        RATELIMIT_ENABLED=settings.rate_limits_enabled,
        RATELIMIT_HEADERS_ENABLED=True,
        TESTING=settings.is_testing,
    )

    if db is None:
        db = Database(make_engine(settings.sqlalchemy_url))
    if mail_transport is None:
        relays = parse_smtp_urls(settings.smtp_url, helo_name=settings.helo_name)
        mail_transport = SMTPTransport(relays[0])
        if relay_check is None:
            relay_check = CachedRelayCheck(settings.smtp_url, helo_name=settings.helo_name)
    app.extensions["distributor.settings"] = settings
    app.extensions["distributor.db"] = db
    app.extensions["distributor.mail_transport"] = mail_transport
    app.extensions["distributor.email_renderer"] = EmailRenderer()
    # Media files: a local folder by default, an S3-compatible store with MEDIA_STORAGE_URL.
    app.extensions["distributor.media_storage"] = media_storage or storage_for(settings)
    # Staff pages warn when mail cannot reach its relay, and the address check asks it whether
    # the relay offers SMTPUTF8 (None with an injected transport and no check: refused).
    app.extensions["distributor.relay_check"] = relay_check

    _init_extensions(app)
    init_celery(app, settings)
    _register_blueprints(app)
    _register_request_hooks(app)
    _register_error_handlers(app)
    _register_template_globals(app, settings)
    security.init_app(app)
    input_guard.init_app(app)
    headers.init_app(app, settings)  # after input_guard: its Host check goes first of all

    if settings.proxy_fix_x_for > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only as many hops as there are proxies we run: a client can prepend anything to
        # X-Forwarded-For, so the address we trust is the one our own proxy appended.
        hops = settings.proxy_fix_x_for
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    from distributor.cli import register_cli

    register_cli(app)
    return app


def _init_extensions(app: Flask) -> None:
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(user_id: str) -> Any:
        import datetime as dt

        from flask import session as cookie

        from distributor.accounts import sessions
        from distributor.accounts.models import User
        from distributor.db import request_session

        if not user_id.isdigit():
            return None
        # A signed cookie alone is not enough: it must name a live server-side session record
        # (revoked on logout, password change, disable; idle and absolute timeouts).
        settings: Settings = app.extensions["distributor.settings"]
        db_session = request_session()
        record = sessions.find_live(
            db_session,
            str(cookie.get("sid", "")),
            int(user_id),
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
            absolute=dt.timedelta(hours=settings.session_max_hours),
        )
        if record is None:
            return None
        user = db_session.get(User, int(user_id))
        return user if user is not None and user.is_active else None


def _register_blueprints(app: Flask) -> None:
    from distributor.accounts.views import bp as accounts_bp
    from distributor.admin.views import bp as admin_bp
    from distributor.api.token_views import bp as api_tokens_bp
    from distributor.api.views import bp as api_bp
    from distributor.audience.public_views import bp as audience_public_bp
    from distributor.audience.views import bp as audience_bp
    from distributor.bounces.views import bp as bounces_bp
    from distributor.delivery.views import bp as delivery_bp
    from distributor.devinbox.views import bp as devinbox_bp
    from distributor.embargo.staff_views import bp as embargo_bp
    from distributor.embargo.views import bp as embargo_room_bp
    from distributor.health.views import bp as health_bp
    from distributor.media.views import bp as media_bp
    from distributor.newsroom.views import bp as newsroom_bp
    from distributor.notifications.views import bp as notifications_bp
    from distributor.organisation.views import bp as organisation_bp
    from distributor.releases.views import bp as releases_bp
    from distributor.reports.views import bp as reports_bp
    from distributor.tracking.views import bp as tracking_bp

    for bp in (
        accounts_bp,
        admin_bp,
        devinbox_bp,
        health_bp,
        tracking_bp,
        reports_bp,
        api_bp,
        api_tokens_bp,
        newsroom_bp,
        releases_bp,
        audience_bp,
        audience_public_bp,
        bounces_bp,
        delivery_bp,
        embargo_bp,
        embargo_room_bp,
        organisation_bp,
        notifications_bp,
        media_bp,
    ):
        app.register_blueprint(bp)
    connect_receivers()

    @app.get("/")
    @security.public
    def index() -> Response:
        """The public newsroom is the home page."""
        from distributor.newsroom.views import render_newsroom

        return render_newsroom()


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish_unit_of_work(response: Response) -> Response:
        # The request owns the transaction: commit on success, roll back on any error status.
        session = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            finally:
                session.close()
        if not request.path.startswith("/static/"):
            log.info(
                "request",
                method=request.method,
                path=redact_path(request.path),
                status=response.status_code,
                ms=round(
                    (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 1
                ),
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        # A view that states its own frame-ancestors (the embeddable subscribe form) decides
        # framing itself; everything else may only be framed by us.
        if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    @app.teardown_request
    def _discard_unit_of_work(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> tuple[Any, int]:
        if _wants_json():
            return jsonify(error=exc.message), exc.status_code
        return render_template(
            "error.html", code=exc.status_code, message=exc.message
        ), exc.status_code

    @app.errorhandler(CSRFError)
    def _csrf_error(_exc: CSRFError) -> tuple[Any, int]:
        message = "The form expired or was sent from elsewhere. Reload the page and try again."
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:
            return exc
        # The exception's own headers stay: ``Allow`` on 405 (RFC 9110 section 15.5.6 says
        # MUST), ``Retry-After`` on 429 and 503.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if _wants_json():
            return jsonify(error=exc.description), exc.code, headers
        page = render_template("error.html", code=exc.code, message=exc.description)
        return page, exc.code, headers


def _register_template_globals(app: Flask, settings: Settings) -> None:
    from flask_login import current_user

    from distributor.navigation import STAFF_NAV, NavItem

    def staff_nav() -> list[NavItem]:
        if not current_user.is_authenticated:
            return []
        return [
            item
            for item in STAFF_NAV
            if current_user.role in item.roles and item.endpoint in app.view_functions
        ]

    def relay_problems() -> list[Any]:
        check = app.extensions.get("distributor.relay_check")
        return check.problems() if check is not None else []

    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"settings": settings, "staff_nav": staff_nav, "relay_problems": relay_problems}
