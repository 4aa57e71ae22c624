"""The public newsroom: listing, permalinks, preview links, feeds, sitemap and media files."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Response

from distributor.db import request_session, utcnow
from distributor.newsroom import services
from distributor.organisation.models import Organisation
from distributor.organisation.services import get_organisation
from distributor.releases.media import PHOTO_WIDTHS, attachment_key, photo_key
from distributor.releases.models import Attachment, Release
from distributor.releases.workflow import is_publicly_visible
from distributor.security import editor_required, public
from distributor.settings import current_settings
from distributor.storage import app_storage, stored_response

bp = Blueprint("newsroom", __name__)

_PHOTO_NAME = re.compile(r"([0-9a-f]{24})-(\d+)\.jpg")
_SIZE_BY_WIDTH = {width: size for size, width in PHOTO_WIDTHS.items()}


def org_zone() -> ZoneInfo:
    """The organisation's time zone (embargoes are entered and shown in it)."""
    if "org_zone" not in g:
        settings = current_settings()
        name = current_organisation().timezone or settings.org_timezone
        try:
            g.org_zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            g.org_zone = settings.tz
    zone: ZoneInfo = g.org_zone
    return zone


@bp.app_template_filter("local")
def local_time(value: dt.datetime | None, fmt: str = "%-d %B %Y") -> str:
    """Format a UTC datetime in the organisation's time zone."""
    if value is None:
        return ""
    return value.astimezone(org_zone()).strftime(fmt)


@bp.app_template_global()
def photo_url(release: Release, size: str = "web", external: bool = False) -> str | None:
    """The stable URL of a release's lead photo at ``web`` (1200 px) or ``email`` (600 px) width."""
    if not release.photo_key:
        return None
    name = f"{release.photo_key}-{PHOTO_WIDTHS[size]}.jpg"
    return url_for("newsroom.photo", name=name, _external=external)


def current_organisation() -> Organisation:
    """The organisation row, loaded once per request."""
    if "organisation" not in g:
        g.organisation = get_organisation(request_session(), current_settings())
    org: Organisation = g.organisation
    return org


@bp.app_context_processor
def _public_layout_context() -> dict[str, Any]:
    # ``templates/public/base.html`` needs ``org``; loaded only when a template touches it.
    return {"org": LocalProxy(current_organisation)}


def public_context() -> dict[str, Any]:
    """What the public layout needs (explicitly, for pages rendered here)."""
    return {"org": current_organisation()}


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def render_newsroom() -> Response:
    """The newsroom home page (served at ``/``)."""
    session = request_session()
    kind = request.args.get("kind") or None
    beat = request.args.get("beat") or None
    query = (request.args.get("q") or "").strip()[: services.MAX_QUERY_LENGTH]
    page = services.list_public_releases(
        session, utcnow(), kind=kind, beat=beat, query=query or None, page=_page_number()
    )
    beats = services.public_beats(session)
    current_beat = next((b for b in beats if b.slug == beat), None)
    html = render_template(
        "newsroom/index.html",
        page=page,
        featured=services.featured_release(session, utcnow()),
        subscribe_href=url_for("audience_public.subscribe")
        if "audience_public.subscribe" in current_app.view_functions
        else None,
        kinds=services.kinds(session),
        beats=beats,
        current_kind=kind,
        current_beat=current_beat,
        query=query,
        **public_context(),
    )
    response = make_response(html)
    # Revalidate every time: a lifted embargo or a withdrawal must show at once.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _subscribe_url(beat_slug: str) -> str | None:
    if "audience_public.subscribe" not in current_app.view_functions:
        return None
    return url_for("audience_public.subscribe", beat=beat_slug)


@bp.get("/releases/<slug>")
@public
def release(slug: str) -> Response:
    session = request_session()
    now = utcnow()
    embargoed = services.embargoed_release(session, slug, now)
    if embargoed is not None:
        # The "Read online" link of an embargoed mail lands here before the lift: say when,
        # not "not found", and show nothing of the release itself.
        page = make_response(
            render_template(
                "newsroom/embargoed.html",
                embargo_until=embargoed.embargo_until,
                subscribe_href=url_for("audience_public.subscribe")
                if "audience_public.subscribe" in current_app.view_functions
                else None,
                **public_context(),
            )
        )
        page.headers["X-Robots-Tag"] = "noindex"
        page.headers["Cache-Control"] = "no-cache"
        return page
    item = services.get_public_release(session, slug, now)
    html = render_template(
        "newsroom/release.html",
        release=item,
        subscribe_url=_subscribe_url,
        is_preview=False,
        **_gallery_context(session, item, now),
        **public_context(),
    )
    response = make_response(html)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _gallery_context(session: Session, release: Release, now: dt.datetime) -> dict[str, Any]:
    """The release's library images and documents whose rights are in force (distributor/media)."""
    from distributor.media import downloads as media_downloads
    from distributor.media import services as media_services

    return {
        "gallery": media_services.visible_release_media(session, release.id, now),
        "media_credit": media_downloads.credit_line,
        "media_terms": media_downloads.usage_terms,
    }


@bp.get("/preview/<token>")
@public
def preview(token: str) -> Response:
    """An unguessable link for reviewers: works before publication, never indexed."""
    session = request_session()
    item = services.get_release_by_preview_token(session, token)
    now = utcnow()
    html = render_template(
        "newsroom/release.html",
        release=item,
        subscribe_url=_subscribe_url,
        is_preview=True,
        is_embargoed=item.embargo_until is not None and item.embargo_until > now,
        is_public=is_publicly_visible(item, now),
        preview_token=token,
        **public_context(),
    )
    response = make_response(html)
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/media/photos/<name>")
@public
def photo(name: str) -> Response:
    """A lead photo by its random key, once its release is public (a spokesperson's photo
    always: the newsroom shows it). Before that only staff see it here; journalists reach an
    embargoed photo through their personal embargo room."""
    match = _PHOTO_NAME.fullmatch(name)
    if match is None or int(match.group(2)) not in _SIZE_BY_WIDTH:
        abort(404)
    owner = services.release_by_photo_key(request_session(), match.group(1))
    is_public = (
        is_publicly_visible(owner, utcnow())
        if owner is not None
        else services.is_spokesperson_photo(request_session(), match.group(1))
    )
    if not is_public and not current_user.is_authenticated:
        abort(404)
    response: Response = stored_response(
        app_storage(),
        photo_key(match.group(1), _SIZE_BY_WIDTH[int(match.group(2))]),
        "image/jpeg",
        cache="public, max-age=31536000, immutable" if is_public else "private, no-store",
    )
    return response


def _send_attachment(release: Release, attachment_id: int, filename: str) -> Response:
    attachment = next((a for a in release.attachments if a.id == attachment_id), None)
    if attachment is None or attachment.filename != filename:
        abort(404)
    return send_attachment(attachment)


def send_attachment(attachment: Attachment) -> Response:
    response: Response = stored_response(
        app_storage(),
        attachment_key(attachment.stored_name),
        attachment.content_type,
        cache="private, max-age=300",
        download_name=attachment.filename,
    )
    return response


@bp.get("/releases/<slug>/attachments/<int:attachment_id>/<filename>")
@public
def attachment(slug: str, attachment_id: int, filename: str) -> Response:
    item = services.get_public_release(request_session(), slug, utcnow())
    return _send_attachment(item, attachment_id, filename)


@bp.get("/preview/<token>/attachments/<int:attachment_id>/<filename>")
@public
def preview_attachment(token: str, attachment_id: int, filename: str) -> Response:
    item = services.get_release_by_preview_token(request_session(), token)
    response = _send_attachment(item, attachment_id, filename)
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _atom(releases: list[Release], *, title: str, self_url: str, alt_url: str) -> Response:
    from distributor.media import downloads as media_downloads
    from distributor.media import services as media_services

    updated = max((r.published_at for r in releases if r.published_at), default=None)
    session, now = request_session(), utcnow()
    # A release's lead picture from the library, only while its rights are in force.
    leads = {
        r.id: next(
            (
                m.asset
                for m in media_services.visible_release_media(session, r.id, now)
                if m.is_lead
            ),
            None,
        )
        for r in releases
        if not r.photo_key
    }
    xml = render_template(
        "newsroom/feed.xml",
        releases=releases,
        leads=leads,
        media_credit=media_downloads.credit_line,
        title=title,
        self_url=self_url,
        alt_url=alt_url,
        updated=updated or dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        **public_context(),
    )
    response = make_response(xml)
    response.headers["Content-Type"] = "application/atom+xml; charset=utf-8"
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/feed.atom")
@public
def feed() -> Response:
    session = request_session()
    org = current_organisation()
    return _atom(
        services.feed_releases(session, utcnow()),
        title=f"{org.name}: newsroom",
        self_url=url_for("newsroom.feed", _external=True),
        alt_url=url_for("index", _external=True),
    )


@bp.get("/beats/<slug>/feed.atom")
@public
def beat_feed(slug: str) -> Response:
    session = request_session()
    beat = services.get_public_beat(session, slug)
    org = current_organisation()
    return _atom(
        services.feed_releases(session, utcnow(), beat=slug),
        title=f"{org.name}: {beat.name}",
        self_url=url_for("newsroom.beat_feed", slug=slug, _external=True),
        alt_url=url_for("index", beat=slug, _external=True),
    )


@bp.get("/sitemap.xml")
@public
def sitemap() -> Response:
    entries = services.sitemap_entries(request_session(), utcnow())
    xml = render_template("newsroom/sitemap.xml", entries=entries)
    response = make_response(xml)
    response.headers["Content-Type"] = "application/xml; charset=utf-8"
    response.headers["Cache-Control"] = "public, max-age=600"
    return response


@bp.get("/robots.txt")
@public
def robots() -> Response:
    body = (
        "User-agent: *\nDisallow: /staff/\nDisallow: /preview/\nDisallow: /embargo/\n"
        f"Sitemap: {url_for('newsroom.sitemap', _external=True)}\n"
    )
    response = make_response(body)
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    return response


@bp.get("/favicon.ico")
@public
def favicon() -> Response:
    """Browsers ask for it on every site; a 404 fills logs and shows a blank tab icon."""
    static = current_app.static_folder or ""
    response = send_file(f"{static}/favicon.ico", mimetype="image/vnd.microsoft.icon")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


_KNOWN_SITES = {
    "linkedin.com": "LinkedIn",
    "bsky.app": "Bluesky",
    "instagram.com": "Instagram",
    "facebook.com": "Facebook",
    "youtube.com": "YouTube",
    "x.com": "X",
    "twitter.com": "X",
    "threads.net": "Threads",
    "github.com": "GitHub",
}


@bp.app_template_filter("site_name")
def site_name(url: str) -> str:
    """``https://www.linkedin.com/company/x`` -> ``LinkedIn``; unknown hosts show themselves."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or url).removeprefix("www.")
    if "/@" in url and host not in _KNOWN_SITES:
        return f"Mastodon ({host})"
    return _KNOWN_SITES.get(host, host)


@bp.post("/staff/releases/<int:release_id>/feature")
@editor_required
def feature(release_id: int) -> Response:
    """Pin a release to the top of the newsroom home, or unpin it."""
    from flask import flash, redirect
    from flask_wtf import FlaskForm

    if not FlaskForm().validate_on_submit():
        abort(400)
    session = request_session()
    item = session.get(Release, release_id)
    if item is None:
        abort(404)
    is_featured = request.form.get("featured") == "1"
    services.set_featured(session, item, is_featured)
    flash(
        "Featured on the newsroom home." if is_featured else "No longer featured.",
        "success",
    )
    return redirect(url_for("releases.show", release_id=release_id), 303)
