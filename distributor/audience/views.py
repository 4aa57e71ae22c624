"""Staff pages for the audience: journalists, beats, media lists and suppressions.

CSV import and export pages live in ``import_views.py`` on the same blueprint.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from distributor.audience import merge as merging
from distributor.audience import preferences, services
from distributor.audience.forms import (
    ActionForm,
    AddMembersForm,
    BeatForm,
    JournalistForm,
    LiftSuppressionForm,
    MediaListForm,
    MergeForm,
    SuppressionForm,
)
from distributor.audience.models import Journalist, LawfulBasis, SuppressionReason
from distributor.db import request_session
from distributor.errors import DomainError, NotFound
from distributor.mail.relay_check import current_relay_check
from distributor.reports import engagement as engagement_report
from distributor.security import EDITORS, admin_required, editor_required, staff_required

bp = Blueprint("audience", __name__, url_prefix="/staff/audience")


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def journalist_filters() -> dict[str, object]:
    """The list filters from the query string (shared by the list and the CSV export)."""
    status = request.args.get("status", "")
    engagement = request.args.get("engagement", "")
    return {
        "q": request.args.get("q", "")[:200],
        "beat_id": _int_arg("beat"),
        "outlet_id": _int_arg("outlet"),
        "status": status if status in services.JOURNALIST_STATUSES else "",
        "engagement": engagement if engagement in engagement_report.ENGAGEMENT_FILTERS else "",
    }


def journalist_query_filters(filters: dict[str, object]) -> dict[str, object]:
    """The list filters as the audience queries take them (engagement as a condition)."""
    return {
        **filters,
        "engagement": engagement_report.engagement_condition(str(filters["engagement"])),
    }


def journalist_search_filters(filters: dict[str, object]) -> dict[str, object]:
    """``journalist_query_filters`` for a page of the list, which reads its matches twice: all
    of them (up to ``services.EXACT_TOTAL_LIMIT``), then a page walking the name index."""
    return {
        **journalist_query_filters(filters),
        "engagement_every_match": engagement_report.engagement_condition(
            str(filters["engagement"]), every_match=True
        ),
    }


# -- journalists ---------------------------------------------------------------------------------


@bp.get("/journalists")
@staff_required
def journalists() -> str:
    session = request_session()
    filters = journalist_filters()
    page = services.search_journalists(
        session,
        after=_int_arg("after"),
        before=_int_arg("before"),
        **journalist_search_filters(filters),  # type: ignore[arg-type]
    )
    suppressed = services.suppressed_addresses(
        session, [j.email_normalized for j in page.journalists]
    )
    return render_template(
        "staff/audience/journalists.html",
        journalists=page.journalists,
        page=page,
        filters=filters,
        beats=services.list_beats(session),
        outlets=services.list_outlets(session),
        statuses=services.JOURNALIST_STATUSES,
        suppressed=suppressed,
    )


def _details(form: JournalistForm) -> services.JournalistDetails:
    return services.JournalistDetails(
        email=form.email.data or "",
        name=form.name.data or "",
        outlet=form.outlet.data or "",
        role=form.role.data or "",
        country=form.country.data or "",
        language=form.language.data or "",
        phone=form.phone.data or "",
        notes=form.notes.data or "",
        lawful_basis=LawfulBasis(form.lawful_basis.data),
    )


@bp.route("/journalists/new", methods=["GET", "POST"])
@editor_required
def new_journalist() -> str | Response:
    form = JournalistForm()
    if form.validate_on_submit():
        try:
            journalist = services.save_journalist(
                request_session(), _details(form), relay=current_relay_check()
            )
        except DomainError as exc:
            form.email.errors = [*form.email.errors, exc.message]
        else:
            flash(f"{journalist.email} added.", "success")
            return redirect(url_for("audience.journalist", journalist_id=journalist.id))
    return render_template("staff/audience/journalist_form.html", form=form, journalist=None)


@bp.route("/journalists/<int:journalist_id>/edit", methods=["GET", "POST"])
@editor_required
def edit_journalist(journalist_id: int) -> str | Response:
    session = request_session()
    journalist = services.get_journalist(session, journalist_id)
    form = JournalistForm()
    if not form.is_submitted():
        form.process(
            data={
                "email": journalist.email,
                "name": journalist.name,
                "outlet": journalist.outlet.name if journalist.outlet else "",
                "role": journalist.role,
                "country": journalist.country,
                "language": journalist.language,
                "phone": journalist.phone,
                "notes": journalist.notes,
                "lawful_basis": journalist.lawful_basis.value,
            }
        )
    if form.validate_on_submit():
        try:
            services.save_journalist(
                session, _details(form), journalist=journalist, relay=current_relay_check()
            )
        except DomainError as exc:
            form.email.errors = [*form.email.errors, exc.message]
        else:
            flash("Saved.", "success")
            return redirect(url_for("audience.journalist", journalist_id=journalist.id))
    return render_template("staff/audience/journalist_form.html", form=form, journalist=journalist)


@bp.get("/journalists/<int:journalist_id>")
@staff_required
def journalist(journalist_id: int) -> str:
    session = request_session()
    record = services.get_journalist(session, journalist_id)
    return render_template(
        "staff/audience/journalist.html",
        journalist=record,
        subscriptions=sorted(record.subscriptions, key=lambda s: s.beat.name),
        suppression=services.find_suppression(session, record.email),
        media_lists=services.media_lists_of(session, record.id),
        deliveries=engagement_report.delivery_history(session, record.id),
        merges=merging.merges_into(session, record.id),
        merge_form=MergeForm(),
        action_form=ActionForm(),
    )


def _resolve_duplicate(value: str) -> Journalist:
    session = request_session()
    value = value.strip()
    found = (
        session.get(Journalist, int(value))
        if value.isdigit()
        else services.find_journalist(session, value)
    )
    if found is None:
        raise NotFound(f"No journalist matches {value!r}")
    return found


@bp.post("/journalists/<int:journalist_id>/merge")
@editor_required
def merge(journalist_id: int) -> Response:
    form = MergeForm()
    if form.validate_on_submit():
        try:
            duplicate = _resolve_duplicate(form.duplicate.data or "")
            log = merging.merge_journalists(
                request_session(), keep_id=journalist_id, duplicate_id=duplicate.id, by=current_user
            )
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(
                f"Merged {log.merged_email}: {log.moved_subscriptions} subscriptions, "
                f"{log.moved_list_memberships} list memberships, {log.moved_deliveries} deliveries.",
                "success",
            )
    return redirect(url_for("audience.journalist", journalist_id=journalist_id))


@bp.post("/journalists/<int:journalist_id>/do-not-contact")
@editor_required
def do_not_contact(journalist_id: int) -> Response:
    if ActionForm().validate_on_submit():
        session = request_session()
        record = services.get_journalist(session, journalist_id)
        services.suppress(
            session,
            record.email,
            SuppressionReason.DO_NOT_CONTACT,
            note="from the journalist page",
            by=current_user,
        )
        flash(f"{record.email} is on the do-not-contact list.", "success")
    return redirect(url_for("audience.journalist", journalist_id=journalist_id))


@bp.post("/journalists/<int:journalist_id>/erase")
@admin_required
def erase_journalist(journalist_id: int) -> Response:
    if ActionForm().validate_on_submit():
        preferences.erase_journalist(request_session(), journalist_id)
        flash(
            "The journalist's data is erased; the address stays suppressed by its hash.", "success"
        )
    return redirect(url_for("audience.journalists"))


# -- beats ---------------------------------------------------------------------------------------


@bp.get("/beats")
@staff_required
def beats() -> str:
    return _beats_page(BeatForm())


def _beats_page(form: BeatForm) -> str:
    session = request_session()
    return render_template(
        "staff/audience/beats.html",
        beats=services.list_beats(session),
        counts=services.beat_counts(session),
        form=form,
        can_edit=current_user.role in EDITORS,
        action_form=ActionForm(),
    )


@bp.post("/beats")
@editor_required
def add_beat() -> str | Response:
    form = BeatForm()
    if form.validate_on_submit():
        try:
            beat = services.save_beat(
                request_session(),
                name=form.name.data or "",
                slug=form.slug.data or "",
                description=form.description.data or "",
                is_public=bool(form.is_public.data),
            )
        except DomainError as exc:
            form.slug.errors = [*form.slug.errors, exc.message]
        else:
            flash(f"Beat {beat.name} added.", "success")
            return redirect(url_for("audience.beats"))
    return _beats_page(form)


@bp.route("/beats/<int:beat_id>/edit", methods=["GET", "POST"])
@editor_required
def edit_beat(beat_id: int) -> str | Response:
    session = request_session()
    beat = services.get_beat(session, beat_id)
    form = BeatForm(obj=beat)
    if form.validate_on_submit():
        try:
            services.save_beat(
                session,
                name=form.name.data or "",
                slug=form.slug.data or "",
                description=form.description.data or "",
                is_public=bool(form.is_public.data),
                beat=beat,
            )
        except DomainError as exc:
            form.slug.errors = [*form.slug.errors, exc.message]
        else:
            flash("Beat saved.", "success")
            return redirect(url_for("audience.beats"))
    return render_template("staff/audience/beat_form.html", form=form, beat=beat)


@bp.post("/beats/<int:beat_id>/delete")
@editor_required
def delete_beat(beat_id: int) -> Response:
    if ActionForm().validate_on_submit():
        session = request_session()
        beat = services.get_beat(session, beat_id)
        services.delete_beat(session, beat)
        flash(f"Beat {beat.name} deleted with its subscriptions.", "success")
    return redirect(url_for("audience.beats"))


# -- media lists ---------------------------------------------------------------------------------


@bp.route("/lists", methods=["GET", "POST"])
@staff_required
def media_lists() -> str | Response:
    session = request_session()
    form = MediaListForm()
    if form.validate_on_submit():
        try:
            media_list = services.save_media_list(
                session, name=form.name.data or "", description=form.description.data or ""
            )
        except DomainError as exc:
            form.name.errors = [*form.name.errors, exc.message]
        else:
            flash(f"Media list {media_list.name} created.", "success")
            return redirect(url_for("audience.media_list", media_list_id=media_list.id))
    return render_template(
        "staff/audience/media_lists.html", lists=services.list_media_lists(session), form=form
    )


@bp.route("/lists/<int:media_list_id>", methods=["GET", "POST"])
@staff_required
def media_list(media_list_id: int) -> str | Response:
    session = request_session()
    record = services.get_media_list(session, media_list_id)
    form = MediaListForm(obj=record, prefix="list")
    members_form = AddMembersForm(prefix="members")
    if members_form.submit.data and members_form.validate_on_submit():
        lines = (members_form.emails.data or "").replace(",", "\n").splitlines()
        missing = services.add_to_media_list(session, record, lines)
        flash("Members added.", "success")
        if missing:
            flash("Not in the audience yet: " + ", ".join(missing[:20]), "warning")
        return redirect(url_for("audience.media_list", media_list_id=record.id))
    if form.submit.data and form.validate_on_submit():
        try:
            services.save_media_list(
                session,
                name=form.name.data or "",
                description=form.description.data or "",
                media_list=record,
            )
        except DomainError as exc:
            form.name.errors = [*form.name.errors, exc.message]
        else:
            flash("List saved.", "success")
            return redirect(url_for("audience.media_list", media_list_id=record.id))
    members = sorted(record.journalists, key=lambda j: (j.name or j.email).lower())
    return render_template(
        "staff/audience/media_list.html",
        media_list=record,
        members=members,
        form=form,
        members_form=members_form,
        action_form=ActionForm(),
    )


@bp.post("/lists/<int:media_list_id>/members/<int:journalist_id>/remove")
@staff_required
def remove_member(media_list_id: int, journalist_id: int) -> Response:
    if ActionForm().validate_on_submit():
        session = request_session()
        services.remove_from_media_list(
            session, services.get_media_list(session, media_list_id), journalist_id
        )
        flash("Removed from the list.", "success")
    return redirect(url_for("audience.media_list", media_list_id=media_list_id))


@bp.post("/lists/<int:media_list_id>/delete")
@editor_required
def delete_media_list(media_list_id: int) -> Response:
    if ActionForm().validate_on_submit():
        session = request_session()
        record = services.get_media_list(session, media_list_id)
        services.delete_media_list(session, record)
        flash(f"Media list {record.name} deleted.", "success")
    return redirect(url_for("audience.media_lists"))


# -- suppressions --------------------------------------------------------------------------------


@bp.route("/suppressions", methods=["GET", "POST"])
@editor_required
def suppressions() -> str | Response:
    session = request_session()
    form = SuppressionForm()
    if form.validate_on_submit():
        try:
            address = services.normalise_address(form.email.data or "")
            services.suppress(
                session,
                address,
                SuppressionReason(form.reason.data),
                note=form.note.data or "",
                by=current_user,
            )
        except DomainError as exc:
            form.email.errors = [*form.email.errors, exc.message]
        else:
            flash(f"{address} is suppressed.", "success")
            return redirect(url_for("audience.suppressions"))
    reason = request.args.get("reason", "")
    return render_template(
        "staff/audience/suppressions.html",
        entries=services.list_suppressions(
            session,
            q=request.args.get("q", "")[:320],
            reason=reason if reason in {r.value for r in SuppressionReason} else "",
        ),
        reasons=list(SuppressionReason),
        form=form,
        action_form=ActionForm(),
        lift_form=LiftSuppressionForm(),
        can_lift=services.can_lift,
    )


@bp.post("/suppressions/<int:suppression_id>/lift")
@editor_required
def lift_suppression(suppression_id: int) -> Response:
    form = LiftSuppressionForm()
    if form.validate_on_submit():
        try:
            services.lift_suppression_by_id(
                request_session(),
                suppression_id,
                by=current_user,
                justification=form.justification.data or "",
            )
        except DomainError as exc:
            flash(exc.message, "error")
            current_app.logger.info("suppression lift refused: %s", exc.message)
        else:
            flash("Suppression lifted.", "success")
    return redirect(url_for("audience.suppressions"))


from distributor.audience import import_views  # noqa: E402,F401  (routes on this blueprint)
