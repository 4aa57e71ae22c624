"""Security headers every page carries (a nonce-based Content-Security-Policy, HSTS), the
Host check (``TRUSTED_HOSTS``) and canonical absolute URLs from ``PUBLIC_BASE_URL``.

CSP Level 3 with a fresh nonce per response: a ``<script>`` or ``<style>`` element runs only
with ``nonce="{{ csp_nonce() }}"``, so markup that slips past nh3 into a release body still
cannot run script (OWASP CSP cheat sheet, "strict CSP"). Inline event handlers and
``javascript:`` URLs are not allowed at all (static/js/page.js replaces them). ``style``
attributes stay allowed (``style-src-attr``): they cannot run script. HSTS (RFC 6797) is sent
in production only, where the site is served over https.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, abort, g, request
from werkzeug.exceptions import SecurityError
from werkzeug.sansio.utils import get_host
from werkzeug.wrappers import Response

from distributor.settings import Settings

HSTS = "max-age=31536000; includeSubDomains"
# Pages that show a person's data or carry a bearer token in the URL: no cache, shared or
# private, may keep them (OWASP ASVS V8.2.1; RFC 9111 5.2.2.5).
PRIVATE_PREFIXES = (
    "/staff",
    "/account",
    "/login",
    "/logout",
    "/dev/",
    "/api/",
    "/preferences/",
    "/unsubscribe/",
    "/subscribe/confirm/",
    "/preview/",
)


def csp_nonce() -> str:
    """This response's nonce (one per request, created on first use)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return str(nonce)


def policy(nonce: str, *, frame_ancestors: str = "'self'") -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


class CanonicalUrls(Flask):
    """A Flask whose absolute URLs always start with ``PUBLIC_BASE_URL``.

    Flask builds ``_external`` URLs from the request's Host header; behind a shared cache
    that lets anyone poison the sitemap, feeds, robots.txt, canonical and Open Graph URLs
    (OWASP: Host header injection). Every absolute URL we emit comes from settings instead.
    """

    public_base_url = ""

    def url_for(self, endpoint: str, *args: Any, **values: Any) -> str:
        if values.get("_external") and self.public_base_url:
            values["_external"] = False
            values.pop("_scheme", None)
            return self.public_base_url + super().url_for(endpoint, *args, **values)
        return super().url_for(endpoint, *args, **values)


def _host_is_trusted(trusted: list[str]) -> None:
    if request.path == "/healthz":
        return  # load balancers probe by address; the page reflects nothing
    try:
        host = get_host(request.scheme, request.headers.get("host"), request.server, trusted)
    except SecurityError:
        abort(400, "Unknown host.")
    if not host:
        abort(400, "Unknown host.")


def init_app(app: Flask, settings: Settings) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    if isinstance(app, CanonicalUrls):
        app.public_base_url = settings.public_base_url.rstrip("/")
    trusted = settings.trusted_host_list
    if trusted:
        # First of all hooks: nothing should run for a request to a host we do not serve.
        app.before_request_funcs.setdefault(None, []).insert(0, lambda: _host_is_trusted(trusted))

    @app.after_request
    def _security_headers(response: Response) -> Response:
        existing = response.headers.get("Content-Security-Policy", "")
        if not existing:
            response.headers["Content-Security-Policy"] = policy(csp_nonce())
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # pre-CSP2 browsers
        elif existing.startswith("frame-ancestors") and ";" not in existing:
            # A view that only states who may frame it (the embeddable subscribe form) gets
            # the full policy with its own frame-ancestors.
            ancestors = existing.split(None, 1)[1] if " " in existing else "'none'"
            response.headers["Content-Security-Policy"] = policy(
                csp_nonce(), frame_ancestors=ancestors
            )
        if settings.is_production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(PRIVATE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
            response.headers.setdefault("Pragma", "no-cache")
        return response
