"""The hot path of the tracking endpoints, answered below Flask.

After a large send, pixel fetches and clicks arrive in the thousands per second, mostly from
proxies and scanners. A Flask request (context, hooks, rate-limit check, session handling,
logging) costs about a millisecond of CPU before the view runs; the work itself is a Redis
RPUSH. ``TrackingFastPath`` is a WSGI middleware installed by the tracking blueprint that
answers ``GET``/``HEAD`` ``/t/o/<token>.gif`` and a resolvable ``/t/c/<token>/<link id>`` itself
and hands everything else (an unknown click, any other path) to the Flask app unchanged. The
Flask views in ``views.py`` implement the same endpoints through the same ``Tracker`` and stay
the reference (and the fallback when the middleware is not installed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.urls import iri_to_uri

from distributor.db import Database
from distributor.logs import get_logger
from distributor.settings import Settings
from distributor.tracking import services
from distributor.tracking.buffer import RawEvent, RedisEventBuffer

log = get_logger("distributor.tracking")

# The smallest transparent GIF (1x1, 43 bytes). Same bytes and headers for every token.
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = "no-store, no-cache, must-revalidate, private, max-age=0"
# The headers every staff and public response carries (see the app factory's after_request).
COMMON_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
]
PIXEL_HEADERS = [
    ("Content-Type", "image/gif"),
    ("Content-Length", str(len(PIXEL_GIF))),
    ("Cache-Control", NO_STORE),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    *COMMON_HEADERS,
]


def click_headers(url: str) -> list[tuple[str, str]]:
    """The headers of a click's redirect to its registered ``url``."""
    return [
        ("Location", iri_to_uri(url)),
        ("Content-Length", "0"),
        ("Cache-Control", NO_STORE),
        ("Referrer-Policy", "no-referrer"),
        *COMMON_HEADERS,
    ]


_PIXEL_PATH = re.compile(r"/t/o/([^/]+)\.gif")
_CLICK_PATH = re.compile(r"/t/c/([^/]+)/([0-9]{1,10})")
_TRACKER_KEY = "distributor.tracker"
SWITCH_TTL = 10.0

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Tracker:
    """One app's tracking state: the Redis buffer (or write-through), the click cache."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.buffer = RedisEventBuffer.from_url(settings.redis_url) if settings.redis_url else None
        self.click_cache = services.ClickCache()
        self._enabled = True
        self._enabled_checked_at = -1e9

    def is_enabled(self) -> bool:
        """The organisation switch, re-read at most every ``SWITCH_TTL`` seconds per process.

        When tracking is off, events are not even buffered; ``store_events`` checks the switch
        again (and each journalist's own) before anything is written.
        """
        now = time.monotonic()
        if now - self._enabled_checked_at > SWITCH_TTL:
            session = self.db.session()
            try:
                self._enabled = services.is_tracking_enabled(session)
            finally:
                session.close()
            self._enabled_checked_at = now
        return self._enabled

    def switch_is_fresh(self) -> bool:
        """Whether ``is_enabled`` can answer from memory, without a query."""
        return time.monotonic() - self._enabled_checked_at <= SWITCH_TTL

    def event_for(
        self, kind: str, token: str, link_id: int | None, method: str, user_agent: str
    ) -> RawEvent | None:
        """The event this request records, or None when tracking may not keep one."""
        if not services.is_plausible_token(token) or not self.is_enabled():
            return None
        return RawEvent.new(
            kind=kind, token=token, link_id=link_id, method=method, user_agent=user_agent
        )

    def record(
        self, kind: str, token: str, link_id: int | None, method: str, user_agent: str
    ) -> None:
        """Keep one event durably before the response goes out (Redis, else the database)."""
        event = self.event_for(kind, token, link_id, method, user_agent)
        if event is None:
            return
        if self.buffer is not None:
            try:
                self.buffer.push(event)
                return
            except Exception:  # Redis unreachable: write it ourselves rather than lose it
                log.warning("tracking buffer unavailable; writing event through", exc_info=True)
        session = self.db.session()
        try:
            services.store_events(session, [event])
            session.commit()
        finally:
            session.close()

    def resolve(self, token: str, link_id: int) -> str | None:
        """The registered URL behind a click, or None (unknown token or link)."""
        if (hit := self.click_cache.get((token, link_id))) is not None:
            return hit
        session = self.db.session()
        try:
            return services.resolve_click(session, token, link_id, self.click_cache)
        finally:
            session.close()


def get_tracker(app: Flask) -> Tracker:
    tracker = app.extensions.get(_TRACKER_KEY)
    if tracker is None:
        tracker = app.extensions.setdefault(
            _TRACKER_KEY,
            Tracker(app.extensions["distributor.settings"], app.extensions["distributor.db"]),
        )
    assert isinstance(tracker, Tracker)
    return tracker


class TrackingFastPath:
    """WSGI middleware: answer pixel fetches and known clicks without entering Flask."""

    def __init__(self, app: Flask, wrapped: WSGIApp) -> None:
        self.app = app
        self.wrapped = wrapped

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        method: str = environ.get("REQUEST_METHOD", "")
        if path.startswith("/t/") and method in ("GET", "HEAD"):
            user_agent = environ.get("HTTP_USER_AGENT", "")
            pixel = _PIXEL_PATH.fullmatch(path)
            if pixel is not None:
                get_tracker(self.app).record("open", pixel[1], None, method, user_agent)
                start_response("200 OK", list(PIXEL_HEADERS))
                return [b"" if method == "HEAD" else PIXEL_GIF]
            click = _CLICK_PATH.fullmatch(path)
            if click is not None:
                tracker = get_tracker(self.app)
                token, link_id = click[1], int(click[2])
                url = tracker.resolve(token, link_id)
                if url is not None:
                    tracker.record("click", token, link_id, method, user_agent)
                    start_response("302 FOUND", click_headers(url))
                    return [b""]
        return self.wrapped(environ, start_response)
