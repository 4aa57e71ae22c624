"""Staff pages for releases: list, compose, release page with workflow, versions, kinds, contacts."""

from __future__ import annotations

from typing import Any

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
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from distributor.audience.models import Beat, MediaList
from distributor.db import request_session, utcnow
from distributor.errors import DomainError, ValidationFailed
from distributor.newsroom.views import org_zone, send_attachment
from distributor.releases import media, services
from distributor.releases.forms import (
    AttachmentForm,
    ContactForm,
    KindForm,
    MediaListsForm,
    ReleaseForm,
    TransitionForm,
    local_to_utc,
    utc_to_local,
)
from distributor.releases.models import (
    PressContact,
    Release,
    ReleaseKind,
    ReleaseStatus,
    ReleaseTransition,
    release_beats,
)
from distributor.security import admin_required, editor_required, staff_required
from distributor.settings import current_settings
from distributor.storage import app_storage

bp = Blueprint("releases", __name__, url_prefix="/staff/releases")

PER_PAGE = 30


# -- list --------------------------------------------------------------------------------------


@bp.get("/")
@staff_required
def index() -> str:
    session = request_session()
    q = (request.args.get("q") or "").strip()
    status = request.args.get("status") or ""
    beat = request.args.get("beat") or ""
    kind = request.args.get("kind") or ""
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
    stmt = select(Release).where(services.visible_to(current_user))
    if q:
        pattern = f"%{q}%"
        stmt = stmt.where(
            or_(
                Release.title.ilike(pattern),
                Release.summary.ilike(pattern),
                Release.campaign_tags.ilike(pattern),
            )
        )
    if status in {s.value for s in ReleaseStatus}:
        stmt = stmt.where(Release.status == ReleaseStatus(status))
    if beat:
        stmt = stmt.where(
            Release.id.in_(
                select(release_beats.c.release_id)
                .join(Beat, Beat.id == release_beats.c.beat_id)
                .where(Beat.slug == beat)
            )
        )
    if kind:
        stmt = stmt.join(ReleaseKind, ReleaseKind.id == Release.kind_id).where(
            ReleaseKind.slug == kind
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    releases = session.scalars(
        stmt.order_by(Release.updated_at.desc(), Release.id.desc())
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
        .options(selectinload(Release.beats))
    ).all()
    return render_template(
        "staff/releases/index.html",
        releases=releases,
        total=total,
        page=page,
        has_next=page * PER_PAGE < total,
        q=q,
        status=status,
        beat=beat,
        kind=kind,
        statuses=list(ReleaseStatus),
        beats=session.scalars(select(Beat).order_by(Beat.name)).all(),
        kinds=services.list_kinds(session),
    )


# -- compose and edit --------------------------------------------------------------------------


def _prepare(form: ReleaseForm, session: Session) -> None:
    kinds = services.ensure_default_kinds(session)
    form.kind_id.choices = [(k.id, k.name) for k in kinds]
    form.beat_ids.choices = [
        (b.id, b.name) for b in session.scalars(select(Beat).order_by(Beat.name))
    ]
    form.contact_ids.choices = [
        (c.id, f"{c.name} ({c.email})") for c in services.list_contacts(session)
    ]
    form.media_list_ids.choices = [
        (m.id, m.name) for m in session.scalars(select(MediaList).order_by(MediaList.name))
    ]


def _uploads(field_data: Any) -> list[FileStorage]:
    return [f for f in (field_data or []) if isinstance(f, FileStorage) and f.filename]


def _save_files(session: Session, release: Release, form: ReleaseForm) -> None:
    storage = app_storage()
    photo = form.photo.data
    if isinstance(photo, FileStorage) and photo.filename:
        media.set_photo(session, release, photo.stream, storage)
    elif form.remove_photo.data and release.photo_key:
        media.remove_photo(session, release, storage)
    if release.photo_key and not release.photo_alt:
        raise ValidationFailed("Describe the lead photo for people who cannot see it (alt text).")
    for upload in _uploads(form.attachments.data):
        media.add_attachment(session, release, upload.stream, upload.filename or "", storage)


def _render_compose(form: ReleaseForm, release: Release | None, status: int = 200) -> Any:
    return (
        render_template("staff/releases/compose.html", form=form, release=release),
        status,
    )


@bp.route("/new", methods=["GET", "POST"])
@staff_required
def new() -> Any:
    session = request_session()
    form = ReleaseForm()
    _prepare(form, session)
    if form.validate_on_submit():
        try:
            release = services.create_release(
                session, author=current_user, data=form.to_input(org_zone())
            )
            _save_files(session, release, form)
        except ValidationFailed as exc:
            flash(exc.message, "error")
            return _render_compose(form, None, 422)
        flash("Draft saved.", "success")
        return redirect(url_for("releases.show", release_id=release.id))
    if form.is_submitted():
        return _render_compose(form, None, 422)
    return _render_compose(form, None)


@bp.route("/<int:release_id>/edit", methods=["GET", "POST"])
@staff_required
def edit(release_id: int) -> Any:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    if not services.can_edit(current_user, release):
        flash(f"This release is {release.status.label.lower()} and cannot be edited.", "error")
        return redirect(url_for("releases.show", release_id=release.id))
    form = ReleaseForm(obj=None if request.method == "POST" else release)
    _prepare(form, session)
    if request.method == "GET":
        form.beat_ids.data = [b.id for b in release.beats]
        form.media_list_ids.data = [m.id for m in release.media_lists]
        form.contact_ids.data = [c.id for c in release.contacts]
        form.embargo_until.data = utc_to_local(release.embargo_until, org_zone())
    if form.validate_on_submit():
        try:
            services.update_release(
                session, release, editor=current_user, data=form.to_input(org_zone())
            )
            _save_files(session, release, form)
        except ValidationFailed as exc:
            flash(exc.message, "error")
            return _render_compose(form, release, 422)
        if release.status is ReleaseStatus.IN_REVIEW:
            flash(
                "Changes saved. The release stays in review; editors see them as a new version.",
                "success",
            )
        else:
            flash("Changes saved.", "success")
        return redirect(url_for("releases.show", release_id=release.id))
    if form.is_submitted():
        return _render_compose(form, release, 422)
    return _render_compose(form, release)


@bp.post("/preview-markdown")
@staff_required
def preview_markdown() -> Response:
    """The compose form's live preview: the same sanitised HTML the newsroom will show."""
    source = request.form.get("body_markdown", "")[:200_000]
    return jsonify(html=services.render_markdown(source))


# -- the release page and its workflow ---------------------------------------------------------


@bp.get("/<int:release_id>")
@staff_required
def show(release_id: int) -> str:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    transitions = session.scalars(
        select(ReleaseTransition)
        .where(ReleaseTransition.release_id == release.id)
        .order_by(ReleaseTransition.created_at.desc(), ReleaseTransition.id.desc())
    ).all()
    actions = [
        (target, services.ACTION_LABELS[(release.status, target)])
        for target in sorted(
            services.RELEASE_WORKFLOW.allowed_from(release.status), key=lambda s: s.value
        )
        if (release.status, target) in services.ACTION_LABELS
        and services.may_transition(current_user, release.status, target)
    ]
    views = current_app.view_functions
    return render_template(
        "staff/releases/show.html",
        release=release,
        transitions=transitions,
        versions=services.versions(session, release),
        actions=actions,
        can_edit=services.can_edit(current_user, release),
        is_public=services.is_publicly_visible(release, utcnow()),
        now=utcnow(),
        transition_form=TransitionForm(),
        attachment_form=AttachmentForm(),
        embargo_local=utc_to_local(release.embargo_until, org_zone()),
        has_email_preview="delivery.preview" in views,
        has_test_send="delivery.test_send" in views,
        has_send_page="delivery.send_page" in views,
        ReleaseStatus=ReleaseStatus,
        **_gallery_context(session, release),
    )


def _gallery_context(session: Session, release: Release) -> dict[str, Any]:
    """The library section of the release page (see distributor/media)."""
    from distributor.media import downloads as media_downloads
    from distributor.media import services as media_services
    from distributor.media.views import EDITABLE

    now = utcnow()
    return {
        "gallery": media_services.release_media(session, release.id),
        "library": media_services.search_assets(
            session,
            media_services.AssetQuery(rights=media_services.RightsFilter.ACTIVE),
            now=now,
            warn_days=current_settings().media_rights_warn_days,
        ),
        "can_edit_gallery": release.status in EDITABLE and services.can_edit(current_user, release),
        "media_available": lambda asset: media_services.is_available(asset, now),
        "media_credit": media_downloads.credit_line,
    }


@bp.post("/<int:release_id>/transition")
@staff_required
def move(release_id: int) -> Response:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    form = TransitionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        target = ReleaseStatus(form.to.data)
    except ValueError:
        abort(400)
    try:
        if target is ReleaseStatus.APPROVED and release.status is ReleaseStatus.IN_REVIEW:
            # The editor sets (or clears) the embargo as part of approving.
            services.set_embargo(
                release, local_to_utc(form.embargo_until.data, org_zone()), utcnow()
            )
        services.transition(
            session,
            release,
            target,
            by=current_user,
            comment=form.comment.data or "",
            require_other_approver=current_settings().require_four_eyes,
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("releases.show", release_id=release_id))
    flash(f"Release is now {target.label.lower()}.", "success")
    return redirect(url_for("releases.show", release_id=release.id))


@bp.post("/<int:release_id>/take-over")
@editor_required
def take_over(release_id: int) -> Response:
    """An editor or admin becomes the owner of a draft."""
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    if not FlaskForm().validate_on_submit():
        abort(400)
    services.take_over(session, release, by=current_user)
    flash("The draft is yours now.", "success")
    return redirect(url_for("releases.show", release_id=release.id))


@bp.get("/<int:release_id>/versions")
@staff_required
def compare(release_id: int) -> str:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    versions = services.versions(session, release)
    by_number = {v.number: v for v in versions}
    if not versions:
        abort(404)
    newest = versions[0].number
    b = request.args.get("b", type=int) or newest
    a = request.args.get("a", type=int) or max(1, b - 1)
    if a not in by_number or b not in by_number:
        abort(404)
    return render_template(
        "staff/releases/compare.html",
        release=release,
        versions=versions,
        a=by_number[a],
        b=by_number[b],
        diff=services.compare_versions(by_number[a], by_number[b]),
    )


# -- attachments -------------------------------------------------------------------------------


def media_list_picker(session: Session, release: Release) -> MediaListsForm:
    """The send page's picker, filled with every media list and the release's choice."""
    form = MediaListsForm(formdata=None)
    form.media_list_ids.choices = [
        (m.id, m.name) for m in session.scalars(select(MediaList).order_by(MediaList.name))
    ]
    form.media_list_ids.data = [m.id for m in release.media_lists]
    return form


@bp.post("/<int:release_id>/media-lists")
@staff_required
def choose_media_lists(release_id: int) -> Response:
    session = request_session()
    release = services.get_release(session, release_id)
    form = MediaListsForm()
    form.media_list_ids.choices = [
        (m.id, m.name) for m in session.scalars(select(MediaList).order_by(MediaList.name))
    ]
    if not form.validate_on_submit():
        abort(400)
    try:
        services.choose_media_lists(
            session, release, editor=current_user, media_list_ids=form.media_list_ids.data or []
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash("Media lists saved: the audience below counts them.", "success")
    return redirect(url_for("delivery.send_page", release_id=release.id) + "#audience-h")


@bp.post("/<int:release_id>/attachments")
@staff_required
def add_attachments(release_id: int) -> Response:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    form = AttachmentForm()
    if not form.validate_on_submit() or not services.can_edit(current_user, release):
        abort(400)
    uploads = _uploads(form.attachments.data)
    for upload in uploads:
        media.add_attachment(session, release, upload.stream, upload.filename or "", app_storage())
    flash(f"{len(uploads)} attachment(s) added.", "success")
    return redirect(url_for("releases.show", release_id=release.id) + "#attachments")


@bp.post("/<int:release_id>/attachments/<int:attachment_id>/delete")
@staff_required
def delete_attachment(release_id: int, attachment_id: int) -> Response:
    session = request_session()
    release = services.get_release(session, release_id, for_user=current_user)
    attachment = next((a for a in release.attachments if a.id == attachment_id), None)
    if attachment is None:
        abort(404)
    if not services.can_edit(current_user, release):
        abort(403)
    media.delete_attachment(session, release, attachment, app_storage())
    flash(f"Removed {attachment.filename}.", "success")
    return redirect(url_for("releases.show", release_id=release.id) + "#attachments")


@bp.get("/<int:release_id>/attachments/<int:attachment_id>")
@staff_required
def download_attachment(release_id: int, attachment_id: int) -> Response:
    release = services.get_release(request_session(), release_id, for_user=current_user)
    attachment = next((a for a in release.attachments if a.id == attachment_id), None)
    if attachment is None:
        abort(404)
    return send_attachment(attachment)


# -- kinds (admins) ----------------------------------------------------------------------------


@bp.route("/kinds", methods=["GET", "POST"])
@admin_required
def kinds() -> Any:
    session = request_session()
    services.ensure_default_kinds(session)
    form = KindForm()
    if form.validate_on_submit():
        try:
            services.save_kind(session, name=form.name.data or "", position=form.position.data or 0)
        except DomainError as exc:
            flash(exc.message, "error")
            return render_template(
                "staff/releases/kinds.html", form=form, kinds=services.list_kinds(session)
            ), exc.status_code
        flash("Kind added.", "success")
        return redirect(url_for("releases.kinds"))
    return render_template(
        "staff/releases/kinds.html", form=form, kinds=services.list_kinds(session)
    )


@bp.post("/kinds/<int:kind_id>")
@admin_required
def update_kind(kind_id: int) -> Response:
    session = request_session()
    kind = session.get(ReleaseKind, kind_id)
    form = KindForm()
    if kind is None or not form.validate_on_submit():
        abort(400)
    try:
        services.save_kind(
            session, name=form.name.data or "", position=form.position.data or 0, kind=kind
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash("Kind saved.", "success")
    return redirect(url_for("releases.kinds"))


@bp.post("/kinds/<int:kind_id>/delete")
@admin_required
def delete_kind(kind_id: int) -> Response:
    session = request_session()
    kind = session.get(ReleaseKind, kind_id)
    if kind is None:
        abort(404)
    try:
        services.delete_kind(session, kind)
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash("Kind deleted.", "success")
    return redirect(url_for("releases.kinds"))


# -- press contacts ----------------------------------------------------------------------------


@bp.route("/contacts", methods=["GET", "POST"])
@staff_required
def contacts() -> Any:
    session = request_session()
    form = ContactForm()
    if form.validate_on_submit():
        services.save_contact(
            session,
            name=form.name.data or "",
            email=form.email.data or "",
            title=form.title.data or "",
            phone=form.phone.data or "",
        )
        flash("Press contact added.", "success")
        return redirect(url_for("releases.contacts"))
    status = 422 if form.is_submitted() else 200
    return render_template(
        "staff/releases/contacts.html", form=form, contacts=services.list_contacts(session)
    ), status


@bp.route("/contacts/<int:contact_id>", methods=["GET", "POST"])
@staff_required
def edit_contact(contact_id: int) -> Any:
    session = request_session()
    contact = session.get(PressContact, contact_id)
    if contact is None:
        abort(404)
    form = ContactForm(obj=contact)
    if form.validate_on_submit():
        services.save_contact(
            session,
            name=form.name.data or "",
            email=form.email.data or "",
            title=form.title.data or "",
            phone=form.phone.data or "",
            contact=contact,
        )
        flash("Press contact saved.", "success")
        return redirect(url_for("releases.contacts"))
    return render_template("staff/releases/contact_edit.html", form=form, contact=contact)


@bp.post("/contacts/<int:contact_id>/delete")
@staff_required
def delete_contact(contact_id: int) -> Response:
    session = request_session()
    contact = session.get(PressContact, contact_id)
    if contact is None:
        abort(404)
    services.delete_contact(session, contact)
    flash("Press contact removed.", "success")
    return redirect(url_for("releases.contacts"))


from distributor.releases import preview_views  # noqa: E402,F401  (routes on this blueprint)
