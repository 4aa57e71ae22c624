"""Pages journalists reach without an account: subscribe, confirm, preferences, unsubscribe.

Every link we mail is opened by security scanners first, so GET never changes anything: it
shows a page whose button POSTs. The one exception to the page flow is RFC 8058: a POST with
the body ``List-Unsubscribe=One-Click`` unsubscribes at once.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, render_template, request, url_for
from sqlalchemy.orm import Session
from wtforms import SelectChoice

from distributor.audience import consent, tokens
from distributor.audience import preferences as prefs
from distributor.audience.forms import (
    ConfirmForm,
    EmbedSubscribeForm,
    EraseForm,
    PreferencesForm,
    SubscribeForm,
)
from distributor.audience.models import Beat, DeliveryMode, Journalist
from distributor.audience.services import find_suppression, list_beats
from distributor.db import request_session
from distributor.errors import ValidationFailed
from distributor.extensions import csrf, limiter
from distributor.mail.relay_check import current_relay_check
from distributor.security import public
from distributor.settings import current_settings

bp = Blueprint("audience_public", __name__)


def _subscribe_limit() -> str:
    return current_settings().subscribe_rate_limit


def _client_ip() -> str | None:
    return request.remote_addr


def _render(template: str, status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(template, **context), status


def _prepare_subscribe(form: SubscribeForm, session: Session) -> list[Beat]:
    beats = list_beats(session, public_only=True)
    form.beats.choices = [SelectChoice(b.id, b.name) for b in beats]
    if not form.is_submitted():
        slug = request.args.get("beat", "")
        form.beats.data = [b.id for b in beats if b.slug == slug]
    return beats


def _handle_subscribe(form: SubscribeForm, template: str, thanks: str) -> tuple[str, int]:
    session = request_session()
    beats = _prepare_subscribe(form, session)
    if form.validate_on_submit():
        try:
            consent.request_subscription(
                session,
                current_settings(),
                email=form.email.data or "",
                name=form.name.data or "",
                beat_ids=list(form.beats.data or []),
                ip=_client_ip(),
                honeypot=form.website.data or "",
                relay=current_relay_check(),
            )
        except ValidationFailed as exc:
            form.form_errors.append(exc.message)
        else:
            # The same page whatever happened: known, unknown, suppressed or mailed recently.
            return _render(thanks)
    status = 422 if form.is_submitted() else 200
    return _render(
        template,
        status,
        form=form,
        beats=beats,
        consent_text=consent.CONSENT_TEXT,
        consent_version=consent.CONSENT_TEXT_VERSION,
    )


# One budget per client address for both subscribe forms: counted per route, the embeddable
# form used to double what the page allowed.
_subscribe_budget = limiter.shared_limit(_subscribe_limit, scope="subscribe", methods=["POST"])


@bp.route("/subscribe", methods=["GET", "POST"])
@public
@_subscribe_budget
def subscribe() -> tuple[str, int]:
    return _handle_subscribe(
        SubscribeForm(), "audience/subscribe.html", "audience/check_inbox.html"
    )


@bp.route("/subscribe/embed", methods=["GET", "POST"])
@public
@csrf.exempt
@_subscribe_budget
def subscribe_embed() -> Response:
    body, status = _handle_subscribe(
        EmbedSubscribeForm(), "audience/embed.html", "audience/embed_thanks.html"
    )
    response = current_app.make_response((body, status))
    # This route alone may be framed: CSP frame-ancestors overrides X-Frame-Options in every
    # current browser (CSP Level 2), and the app-wide SAMEORIGIN stays for everything else.
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {current_settings().embed_frame_ancestors}"
    )
    return response


@bp.get("/subscribe/confirm/<token>")
@public
def confirm(token: str) -> tuple[str, int]:
    preview = consent.preview_confirmation(request_session(), current_settings(), token)
    return _render(
        "audience/confirm.html",
        form=ConfirmForm(),
        journalist=preview.journalist,
        beats=preview.beats,
        consent_text=consent.CONSENT_TEXT,
    )


@bp.post("/subscribe/confirm/<token>")
@public
def confirm_post(token: str) -> tuple[str, int]:
    form = ConfirmForm()
    if not form.validate_on_submit():
        return confirm(token)
    settings = current_settings()
    result = consent.confirm_subscription(request_session(), settings, token, ip=_client_ip())
    return _render(
        "audience/confirmed.html",
        beats=result.beats,
        preferences_url=url_for(
            "audience_public.preferences",
            token=tokens.preferences_token(settings, result.journalist.id),
        ),
    )


def _journalist_for(token: str) -> Journalist:
    journalist_id = tokens.load_preferences_token(current_settings(), token)
    journalist = request_session().get(Journalist, journalist_id)
    if journalist is None:
        raise tokens.InvalidToken(
            "This link is no longer valid: the address it was sent to has been erased."
        )
    return journalist


@bp.route("/preferences/<token>", methods=["GET", "POST"])
@public
def preferences(token: str) -> tuple[str, int]:
    return _preferences_page(token, EraseForm(), handle_form=True)


def _preferences_page(token: str, erase_form: EraseForm, *, handle_form: bool) -> tuple[str, int]:
    settings = current_settings()
    session = request_session()
    journalist = _journalist_for(token)
    form = PreferencesForm()
    beats = prefs.preference_beats(session, journalist)
    form.beats.choices = [SelectChoice(b.id, b.name) for b in beats]
    saved = False
    if handle_form and form.validate_on_submit():
        journalist = prefs.update_preferences(
            session,
            settings,
            journalist.id,
            beat_ids=list(form.beats.data or []),
            delivery_mode=DeliveryMode(form.delivery_mode.data),
            is_paused=bool(form.is_paused.data),
            ip=_client_ip(),
        )
        saved = True
    if not handle_form or not form.is_submitted() or saved:
        form.beats.data = sorted(prefs.active_beat_ids(journalist))
        form.delivery_mode.data = journalist.delivery_mode.value
        form.is_paused.data = journalist.is_paused
    suppression = find_suppression(session, journalist.email)
    return _render(
        "audience/preferences.html",
        form=form,
        erase_form=erase_form,
        journalist=journalist,
        beats=beats,
        saved=saved,
        suppression=suppression,
        token=token,
        unsubscribe_url=url_for(
            "audience_public.unsubscribe", token=tokens.unsubscribe_token(settings, journalist.id)
        ),
    )


@bp.get("/preferences/<token>/data.json")
@public
def download_data(token: str) -> Response:
    journalist = _journalist_for(token)
    data = prefs.export_personal_data(request_session(), journalist.id)
    response = current_app.response_class(
        json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json"
    )
    response.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/preferences/<token>/erase")
@public
def erase(token: str) -> tuple[str, int]:
    journalist = _journalist_for(token)
    form = EraseForm()
    if not form.validate_on_submit():
        return _preferences_page(token, form, handle_form=False)
    prefs.erase_journalist(request_session(), journalist.id)
    return _render("audience/erased.html")


@bp.get("/unsubscribe/<token>")
@public
def unsubscribe_page(token: str) -> tuple[str, int]:
    settings = current_settings()
    journalist_id = tokens.load_unsubscribe_token(settings, token)
    journalist = request_session().get(Journalist, journalist_id)
    return _render(
        "audience/unsubscribe.html",
        journalist=journalist,
        token=token,
        preferences_url=(
            url_for(
                "audience_public.preferences",
                token=tokens.preferences_token(settings, journalist.id),
            )
            if journalist is not None
            else None
        ),
    )


@bp.post("/unsubscribe/<token>")
@public
@csrf.exempt  # RFC 8058: mail clients POST here without any page or cookie
def unsubscribe(token: str) -> tuple[str, int]:
    journalist_id = tokens.load_unsubscribe_token(current_settings(), token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    # An erased journalist is already unsubscribed for good: answer the same either way.
    prefs.unsubscribe_all(
        request_session(),
        journalist_id,
        note="one-click (RFC 8058)" if one_click else "unsubscribe page",
    )
    return _render(
        "audience/unsubscribed.html",
        preferences_url=url_for(
            "audience_public.preferences",
            token=tokens.preferences_token(current_settings(), journalist_id),
        ),
    )
