"""The journalist's side: the personal room link, its photo and downloads.

Thin views: each asks ``embargo.room`` what this link shows in this browser and renders it.
A room page is never cached, never indexed and sends no referrer.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from distributor.db import request_session, utcnow
from distributor.embargo import notices, room
from distributor.embargo.models import AccessEventKind
from distributor.embargo.room import Outcome, RoomView
from distributor.errors import NotFound, ValidationFailed
from distributor.media import downloads as media_downloads
from distributor.media import services as media_services
from distributor.newsroom.views import public_context, send_attachment
from distributor.releases.media import PHOTO_WIDTHS, photo_key
from distributor.security import public
from distributor.settings import current_settings
from distributor.storage import MediaFileMissing, MediaStorage, app_storage, stored_response
from distributor.tasks_api import enqueue_after_commit

bp = Blueprint("embargo_room", __name__)

BROWSER_COOKIE = "embargo_browser"
_ONE_YEAR = 365 * 24 * 3600


def _browser_key() -> str | None:
    key = request.cookies.get(BROWSER_COOKIE, "")
    return key if 20 <= len(key) <= 64 and key.isascii() else None


def _private(response: Response, browser_key: str | None = None) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    if browser_key is not None and browser_key != request.cookies.get(BROWSER_COOKIE):
        response.set_cookie(
            BROWSER_COOKIE,
            browser_key,
            max_age=_ONE_YEAR,
            path="/embargo/",
            httponly=True,
            samesite="Lax",
            secure=current_settings().is_production,
        )
    return response


def _page(view: RoomView, token: str, status: int = 200) -> Response:
    library = (
        [
            m.asset
            for m in media_services.visible_release_media(
                request_session(), view.release.id, utcnow()
            )
        ]
        if view.outcome is Outcome.ROOM
        else []
    )
    html = render_template(
        "embargo/room.html",
        view=view,
        Outcome=Outcome,
        token=token,
        release=view.release,
        photo_widths=PHOTO_WIDTHS,
        library=library,
        media_credit=media_downloads.credit_line,
        media_terms=media_downloads.usage_terms,
        **public_context(),
    )
    return _private(make_response(html, status))


def _answer(view: RoomView, token: str) -> Response:
    if view.outcome is Outcome.PUBLIC:
        return redirect(url_for("newsroom.release", slug=view.release.slug), 302)
    status = {
        Outcome.WITHDRAWN: 410,
        Outcome.REVOKED: 410,
        Outcome.OTHER_JOURNALIST: 403,
    }.get(view.outcome, 200)
    return _page(view, token, status)


@bp.get("/embargo/<token>")
@public
def room_page(token: str) -> Response:
    """The personal link from the mail."""
    view = room.look(request_session(), current_settings(), token, _browser_key(), utcnow())
    return _answer(view, token)


@bp.post("/embargo/<token>/enter")
@public
def enter(token: str) -> Response:
    """The button: accept the terms if asked and open the room in this browser."""
    browser_key = _browser_key() or secrets.token_urlsafe(24)
    try:
        view = room.enter(
            request_session(),
            current_settings(),
            token,
            browser_key=browser_key,
            accepts_terms=request.form.get("accept") == "yes",
            now=utcnow(),
        )
    except ValidationFailed as exc:
        flash(exc.message, "error")
        return _private(redirect(url_for("embargo_room.room_page", token=token), 303))
    if view.outcome is not Outcome.ROOM:
        return _answer(view, token)
    response = redirect(url_for("embargo_room.room_page", token=token), 303)
    return _private(response, browser_key)


@bp.post("/embargo/<token>/new-browser")
@public
def new_browser(token: str) -> Response:
    """Mail the owner of the link a one-time link that moves the room to this browser."""
    session = request_session()
    if room.request_new_browser(session, current_settings(), token, _browser_key(), utcnow()):
        enqueue_after_commit(session, notices.SEND_TASK)
    html = render_template("embargo/new_browser_sent.html", **public_context())
    return _private(make_response(html))


@bp.route("/embargo/<token>/browser/<nonce>/<code>", methods=["GET", "POST"])
@public
def move_browser(token: str, nonce: str, code: str) -> Response:
    """GET shows a button (scanners open links); the POST moves the room to this browser."""
    if request.method == "GET":
        room.resolve(request_session(), current_settings(), token)
        html = render_template("embargo/move_browser.html", **public_context())
        return _private(make_response(html))
    browser_key = _browser_key() or secrets.token_urlsafe(24)
    room.move_to_browser(
        request_session(),
        current_settings(),
        token,
        nonce=nonce,
        code=code,
        browser_key=browser_key,
        now=utcnow(),
    )
    return _private(redirect(url_for("embargo_room.room_page", token=token), 303), browser_key)


@bp.get("/embargo/<token>/photo/<size>.jpg")
@public
def photo(token: str, size: str) -> Response:
    """The lead photo, through the room until the lift, then from its public URL."""
    if size not in PHOTO_WIDTHS:
        abort(404)
    session = request_session()
    now = utcnow()
    view = room.look(session, current_settings(), token, _browser_key(), now, logs_view=False)
    release = view.release
    if not release.photo_key:
        abort(404)
    if view.outcome is Outcome.PUBLIC:
        name = f"{release.photo_key}-{PHOTO_WIDTHS[size]}.jpg"
        return redirect(url_for("newsroom.photo", name=name), 302)
    if view.outcome is not Outcome.ROOM:
        abort(404)
    key = photo_key(release.photo_key, size)
    storage = app_storage()
    if not storage.exists(key):
        abort(404)
    room.log(session, view.access, AccessEventKind.PHOTO, now, f"photo ({size})")
    return _private(stored_response(storage, key, "image/jpeg", cache="private, no-store"))


@bp.get("/embargo/<token>/attachments/<int:attachment_id>/<filename>")
@public
def attachment(token: str, attachment_id: int, filename: str) -> Response:
    """A download, through the room until the lift, then from its public URL."""
    session = request_session()
    now = utcnow()
    view = room.look(session, current_settings(), token, _browser_key(), now, logs_view=False)
    release = view.release
    found = next((a for a in release.attachments if a.id == attachment_id), None)
    if found is None or found.filename != filename:
        abort(404)
    if view.outcome is Outcome.PUBLIC:
        return redirect(
            url_for(
                "newsroom.attachment",
                slug=release.slug,
                attachment_id=found.id,
                filename=found.filename,
            ),
            302,
        )
    if view.outcome in (Outcome.LANDING, Outcome.OTHER_BROWSER):
        # Clicked in the mail before entering: the room's front door says what to do.
        return _private(redirect(url_for("embargo_room.room_page", token=token), 303))
    if view.outcome is not Outcome.ROOM:
        abort(404)
    room.log(session, view.access, AccessEventKind.DOWNLOAD, now, found.filename)
    return _private(send_attachment(found))


@bp.get("/embargo/<token>/library/<key>/<size>")
@public
def library(token: str, key: str, size: str) -> Response:
    """A media library file of the release (credit written in), through the room until the
    lift, then from its public URL; never once its rights have ended."""
    session = request_session()
    now = utcnow()
    view = room.look(session, current_settings(), token, _browser_key(), now, logs_view=False)
    items = media_services.visible_release_media(session, view.release.id, now)
    asset = next((m.asset for m in items if m.asset.key == key), None)
    if asset is None:
        abort(404)
    if view.outcome is Outcome.PUBLIC:
        return redirect(url_for("media.download", key=key, size=size), 302)
    if view.outcome in (Outcome.LANDING, Outcome.OTHER_BROWSER):
        return _private(redirect(url_for("embargo_room.room_page", token=token), 303))
    if view.outcome is not Outcome.ROOM:
        abort(404)
    storage: MediaStorage = current_app.extensions["distributor.media_storage"]
    try:
        prepared = media_downloads.prepare_download(storage, asset, size)
        body = storage.stream(prepared.key)
    except (NotFound, MediaFileMissing):
        abort(404)
    room.log(session, view.access, AccessEventKind.DOWNLOAD, now, prepared.filename)
    response = Response(body, mimetype=prepared.content_type, direct_passthrough=True)
    response.headers["Content-Disposition"] = (
        f"attachment; filename*=UTF-8''{quote(prepared.filename)}"
    )
    return _private(response)
