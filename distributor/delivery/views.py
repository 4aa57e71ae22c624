"""Staff pages for sending a release: audience, checklist, controls, live progress, preview.

Every control is a CSRF-protected POST that calls one service; the services make a second
click harmless (a send that is already paused stays paused), and a refused move comes back
as a flash message rather than an error page.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from distributor.db import request_session, utcnow
from distributor.delivery import reasons, services
from distributor.delivery.checklist import (
    Checklist,
    DnsPythonResolver,
    TxtResolver,
    run_checklist,
)
from distributor.delivery.confirmation import build_confirmation, check_confirmed
from distributor.delivery.forms import ScheduleForm, SendActionForm
from distributor.delivery.models import Send
from distributor.delivery.rendering import (
    CompiledRelease,
    Recipient,
    compile_release,
    staff_recipient,
)
from distributor.errors import DomainError
from distributor.media import rights as media_rights
from distributor.notifications import test_sends
from distributor.notifications.models import StaffMailKind
from distributor.notifications.services import recent_staff_mails
from distributor.organisation.services import get_organisation
from distributor.releases.forms import local_to_utc, utc_to_local
from distributor.releases.models import Release
from distributor.releases.services import can_edit, may_see
from distributor.releases.views import media_list_picker
from distributor.security import EDITORS, editor_required, staff_required
from distributor.settings import current_settings

bp = Blueprint("delivery", __name__, url_prefix="/staff/releases")

_RESOLVER_KEY = "distributor.dns_resolver"


def _resolver() -> TxtResolver:
    # Tests put a fake here; the real one is built once per app.
    resolver: TxtResolver | None = current_app.extensions.get(_RESOLVER_KEY)
    if resolver is None:
        resolver = DnsPythonResolver(timeout=float(current_settings().dns_timeout_seconds))
        current_app.extensions[_RESOLVER_KEY] = resolver
    return resolver


def _org_zone() -> ZoneInfo:
    """Staff type and read send times in the organisation's time zone."""
    return ZoneInfo(get_organisation(request_session(), current_settings()).timezone)


def _release(release_id: int) -> Release:
    """The release, if this user may see it: another press officer's draft is a 404 here as
    on the release pages (OWASP ASVS V4.2.1, object-level access)."""
    release = request_session().get(Release, release_id)
    if release is None or not may_see(current_user, release):
        abort(404)
    return release


def _back(release_id: int) -> Response:
    return redirect(url_for("delivery.send_page", release_id=release_id), code=303)


def _sample_for_current_user() -> Recipient:
    return staff_recipient(email=current_user.email, name=current_user.name, label="preview")


def _preview_parts(compiled: CompiledRelease) -> tuple[str, str, EmailMessage]:
    raw = compiled.message_for(_sample_for_current_user())[2]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    return (
        html.get_content() if html is not None else "",
        text.get_content() if text is not None else "",
        message,
    )


def _checklist(release: Release, compiled: CompiledRelease | None = None) -> Checklist:
    session = request_session()
    settings = current_settings()
    return run_checklist(
        release=release,
        compiled=compiled or compile_release(session, release.id, settings),
        org=get_organisation(session, settings),
        settings=settings,
        resolver=_resolver(),
        rights=media_rights.rights_problems(
            session, release, now=utcnow(), warn_days=settings.media_rights_warn_days
        ),
    )


def _require_confirmation(release: Release) -> None:
    """The POST must come from the confirmation page, with today's red items overridden."""
    # Expired image rights are the one red item no override lifts: sending would breach them.
    media_rights.refuse_expired_rights(request_session(), release, now=utcnow())
    check_confirmed(
        _checklist(release),
        confirmed=request.form.get("confirmed") == "yes",
        override=request.form.get("override", ""),
    )


# -- the send page ---------------------------------------------------------------------------


@bp.get("/<int:release_id>/send")
@staff_required
def send_page(release_id: int) -> str:
    session = request_session()
    release = _release(release_id)
    settings = current_settings()
    compiled = compile_release(session, release_id, settings)
    checklist = _checklist(release, compiled)
    send = session.scalar(select(Send).where(Send.release_id == release_id))
    zone = _org_zone()
    schedule_form = ScheduleForm()
    if send is not None and send.scheduled_for is not None:
        schedule_form.scheduled_for.data = utc_to_local(send.scheduled_for, zone)
    return render_template(
        "staff/delivery/send.html",
        release=release,
        send=send,
        audience=services.audience_breakdown(session, release_id),
        progress=services.send_progress(session, release_id),
        reasons=reasons.current_reasons(
            session, release_id, reasons.relay_statuses(settings), zone
        ),
        in_doubt=services.list_in_doubt(session, release_id),
        checklist=checklist,
        html_size=compiled.html_size,
        can_send=current_user.role in EDITORS,
        action_form=SendActionForm(),
        schedule_form=schedule_form,
        zone=zone,
        media_lists_form=media_list_picker(session, release),
        can_choose_lists=can_edit(current_user, release),
    )


@bp.get("/<int:release_id>/send/confirm")
@editor_required
def confirm(release_id: int) -> str | Response:
    """Restate what the send will do; its buttons POST to send now or schedule."""
    session = request_session()
    release = _release(release_id)
    zone = _org_zone()
    schedule_form = ScheduleForm(request.args, meta={"csrf": False})
    scheduled_for = None
    if "scheduled_for" in request.args:
        if not schedule_form.validate() or schedule_form.scheduled_for.data is None:
            flash("Choose the date and time to send at.", "error")
            return _back(release_id)
        scheduled_for = local_to_utc(schedule_form.scheduled_for.data, zone)
    audience = services.audience_breakdown(session, release_id)
    compiled = compile_release(session, release_id, current_settings())
    summary = build_confirmation(
        release=release,
        audience=audience,
        checklist=_checklist(release, compiled),
        scheduled_for=scheduled_for,
    )
    return render_template(
        "staff/delivery/confirm.html",
        release=release,
        summary=summary,
        subject=compiled.subject,
        local_value=request.args.get("scheduled_for", ""),
        zone=zone,
        colleagues=test_sends.colleagues(session),
        recent_tests=recent_staff_mails(
            session, kinds=(StaffMailKind.RELEASE_TEST,), release_id=release_id, limit=8
        ),
        action_form=SendActionForm(),
    )


@bp.get("/<int:release_id>/send/progress.json")
@staff_required
def progress(release_id: int) -> Response:
    _release(release_id)
    session = request_session()
    p = services.send_progress(session, release_id)
    why = reasons.current_reasons(
        session, release_id, reasons.relay_statuses(current_settings()), _org_zone()
    )
    return jsonify(
        reasons=[{"kind": r.kind, "text": r.text, "count": r.count} for r in why],
        status=p.status,
        counts=p.counts,
        total=p.total,
        done=p.done,
        rate_per_second=round(p.rate_per_second, 1),
        eta_seconds=None if p.eta_seconds is None else round(p.eta_seconds),
    )


def _control(release_id: int, run: Callable[[Session], Any], done: str) -> Response:
    _release(release_id)
    if not SendActionForm().validate_on_submit():
        abort(400)
    session = request_session()
    try:
        result = run(session)
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "warning")
        return _back(release_id)
    flash(done.format(result=result), "success")
    return _back(release_id)


@bp.post("/<int:release_id>/send/now")
@editor_required
def send_now(release_id: int) -> Response:
    release = _release(release_id)

    def start(session: Session) -> Any:
        _require_confirmation(release)
        return services.start_send(session, release_id, requested_by_id=current_user.id)

    return _control(release_id, start, "Sending started. Progress updates below.")


@bp.post("/<int:release_id>/send/schedule")
@editor_required
def schedule(release_id: int) -> Response:
    _release(release_id)
    form = ScheduleForm()
    if not form.validate_on_submit() or form.scheduled_for.data is None:
        flash("Choose the date and time to send at.", "error")
        return _back(release_id)
    zone = _org_zone()
    when = local_to_utc(form.scheduled_for.data, zone)
    session = request_session()
    try:
        _require_confirmation(_release(release_id))
        services.start_send(
            session, release_id, requested_by_id=current_user.id, scheduled_for=when
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "warning")
        return _back(release_id)
    local = form.scheduled_for.data.strftime("%d %b %Y %H:%M").lstrip("0")
    flash(f"Scheduled for {local} ({zone.key}).", "success")
    return _back(release_id)


@bp.post("/<int:release_id>/send/pause")
@editor_required
def pause(release_id: int) -> Response:
    return _control(
        release_id,
        lambda s: services.pause_send(s, release_id),
        "Paused. Messages already handed to the mail server still arrive.",
    )


@bp.post("/<int:release_id>/send/resume")
@editor_required
def resume(release_id: int) -> Response:
    return _control(release_id, lambda s: services.resume_send(s, release_id), "Sending resumed.")


@bp.post("/<int:release_id>/send/cancel")
@editor_required
def cancel(release_id: int) -> Response:
    return _control(
        release_id,
        lambda s: services.cancel_send(s, release_id),
        "Cancelled. Nothing more will be sent; messages already sent stay sent.",
    )


@bp.post("/<int:release_id>/send/retry-failed")
@editor_required
def retry_failed(release_id: int) -> Response:
    return _control(
        release_id,
        lambda s: services.retry_failed(s, release_id),
        "{result} failed messages queued again.",
    )


@bp.post("/<int:release_id>/send/resend-in-doubt")
@editor_required
def resend_in_doubt(release_id: int) -> Response:
    ids = [int(v) for v in request.form.getlist("delivery_id") if v.isdigit()]
    if not ids:
        flash("Tick the messages to send again.", "warning")
        return _back(release_id)
    return _control(
        release_id,
        lambda s: services.resend_in_doubt(s, release_id, ids),
        "{result} messages queued again.",
    )


# -- preview and test send -------------------------------------------------------------------


@bp.get("/<int:release_id>/email-preview")
@staff_required
def preview(release_id: int) -> str:
    release = _release(release_id)
    compiled = compile_release(request_session(), release_id, current_settings())
    _, text, message = _preview_parts(compiled)
    return render_template(
        "staff/delivery/preview.html",
        release=release,
        subject=compiled.subject,
        html_size=compiled.html_size,
        text=text,
        headers=[(k, str(v)) for k, v in message.items()],
        action_form=SendActionForm(),
    )


@bp.get("/<int:release_id>/email-preview/html")
@staff_required
def preview_html(release_id: int) -> Response:
    """The HTML part alone, for the sandboxed preview iframes."""
    _release(release_id)
    compiled = compile_release(request_session(), release_id, current_settings())
    html, _, _ = _preview_parts(compiled)
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
    )
    return response


@bp.post("/<int:release_id>/email-preview/test-send")
@staff_required
def test_send(release_id: int) -> Response:
    """Queue the release mail to the current user, or to the colleagues ticked."""
    _release(release_id)
    if not SendActionForm().validate_on_submit():
        abort(400)
    ids = [int(v) for v in request.form.getlist("user_id") if v.isdigit()]
    addresses = test_sends.queue_release_tests(
        request_session(),
        release_id,
        user_ids=ids or [current_user.id],
        requested_by_id=current_user.id,
    )
    back = request.form.get("back")
    target = (
        url_for("delivery.confirm", release_id=release_id)
        if back == "confirm"
        else url_for("delivery.preview", release_id=release_id)
    )
    if not addresses:
        flash("Tick at least one active colleague.", "warning")
        return redirect(target, 303)
    where = " They will appear in the dev inbox." if current_settings().uses_dev_inbox else ""
    flash(f"Test email queued for {', '.join(addresses)}.{where}", "success")
    return redirect(target, 303)
