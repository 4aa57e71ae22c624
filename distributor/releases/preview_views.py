"""Compose previews of unsaved work: the whole newsroom page and the whole mail.

The compose form posts what is typed (nothing is saved); the server renders it with the same
templates and the same Markdown sanitiser as the real thing, inside a sandboxed frame.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from flask import current_app, render_template, request
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from distributor.audience.models import Beat
from distributor.db import request_session, utcnow
from distributor.delivery.release_context import release_context
from distributor.mail.rendering import EmailRenderer, compile_mjml
from distributor.organisation.services import get_organisation
from distributor.releases import services
from distributor.releases.models import PressContact, Release, ReleaseKind, credit_line
from distributor.releases.views import bp
from distributor.security import staff_required
from distributor.settings import current_settings

# The frames show our own markup only; they run no script and reach nothing but our files.
_FRAME_CSP = "sandbox allow-same-origin; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdigit()][:50]


def _draft() -> SimpleNamespace:
    """What the form holds, shaped like a release (never added to the session)."""
    session = request_session()
    form = request.form
    saved = None
    release_id = form.get("release_id", "")
    if release_id.isdigit():
        saved = session.get(Release, int(release_id))
        if saved is not None and not services.may_see(current_user, saved):
            saved = None  # another press officer's draft lends nothing (photo, files, token)
    kind_id = form.get("kind_id", "")
    kind = session.get(ReleaseKind, int(kind_id)) if kind_id.isdigit() else None
    credit = form.get("photo_credit", "")[:300]
    photo_key = saved.photo_key if saved is not None and not form.get("remove_photo") else None
    return SimpleNamespace(
        id=saved.id if saved else 0,
        slug=saved.slug if saved else "preview",
        preview_token=saved.preview_token if saved else "",
        title=" ".join(form.get("title", "").split())[:300] or "(no title yet)",
        summary=form.get("summary", "").strip()[:2000],
        body_html=services.render_markdown(form.get("body_markdown", "")[:200_000]),
        kind=kind or SimpleNamespace(name="Press release"),
        published_at=utcnow(),
        created_at=utcnow(),
        embargo_until=saved.embargo_until if saved else None,
        photo_key=photo_key,
        photo_alt=form.get("photo_alt", "")[:500],
        photo_caption=form.get("photo_caption", "")[:1000],
        photo_credit=credit,
        credit_line=credit_line(credit),
        contacts=list(
            session.scalars(select(PressContact).where(PressContact.id.in_(_ids("contact_ids"))))
        ),
        beats=list(session.scalars(select(Beat).where(Beat.id.in_(_ids("beat_ids"))))),
        attachments=list(saved.attachments) if saved else [],
    )


def _frame(html: str) -> Response:
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _FRAME_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/preview-page")
@staff_required
def preview_page() -> Response:
    """The newsroom page as it would look with what is typed now."""
    from distributor.newsroom.views import public_context

    draft = _draft()
    html = render_template(
        "newsroom/release.html",
        release=draft,
        subscribe_url=lambda _slug: None,
        is_preview=True,
        is_embargoed=False,
        is_public=False,
        preview_token=draft.preview_token,
        **public_context(),
    )
    return _frame(html)


@bp.post("/preview-mail")
@staff_required
def preview_mail() -> Response:
    """The release mail as a journalist would get it (no tracking, a sample recipient)."""
    settings = current_settings()
    draft = _draft()
    org = get_organisation(request_session(), settings)
    context: dict[str, Any] = release_context(
        cast(Release, draft),
        org,
        settings,
        recipient={
            "name": "Sample Journalist",
            "email": "journalist@example.org",
            "reason": "you follow the beats of this release",
            "preferences_url": f"{settings.public_base_url}/preferences/sample",
            "unsubscribe_url": f"{settings.public_base_url}/unsubscribe/sample",
        },
        link=lambda url: url,
        pixel="",
        body_html=draft.body_html,
    )
    renderer: EmailRenderer = current_app.extensions["distributor.email_renderer"]
    html = compile_mjml(renderer.render_mjml("release", context))
    return _frame(html)
