"""Staff pages of the media library, the release gallery controls, and public downloads."""

from __future__ import annotations

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
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from distributor.audience.models import Beat
from distributor.db import request_session, utcnow
from distributor.errors import DomainError, NotFound
from distributor.media import downloads, images, services
from distributor.media.forms import (
    AssetForm,
    DeleteAssetForm,
    ReleaseItemForm,
    UploadForm,
    UseInReleaseForm,
)
from distributor.media.models import AssetKind, LicenceKind, MediaAsset, RightsState
from distributor.newsroom.services import get_public_release as public_release
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release, ReleaseStatus
from distributor.releases.services import can_edit
from distributor.security import public, staff_required
from distributor.settings import current_settings
from distributor.storage import MediaFileMissing, MediaStorage, stored_response

bp = Blueprint("media", __name__)

# Releases whose gallery can still change (what a send carries is fixed once it is sending).
EDITABLE = (
    ReleaseStatus.DRAFT,
    ReleaseStatus.IN_REVIEW,
    ReleaseStatus.APPROVED,
    ReleaseStatus.SCHEDULED,
)


def _storage() -> MediaStorage:
    storage: MediaStorage = current_app.extensions["distributor.media_storage"]
    return storage


def _beat_choices() -> list[tuple[int, str]]:
    return [(b.id, b.name) for b in request_session().scalars(select(Beat).order_by(Beat.name))]


def _asset(asset_id: int) -> MediaAsset:
    try:
        return services.get_asset(request_session(), asset_id)
    except NotFound:
        abort(404)


# -- the library -------------------------------------------------------------------------------


@bp.get("/staff/media/")
@staff_required
def index() -> str:
    args = request.args
    beat = args.get("beat", "")
    query = services.AssetQuery(
        text=args.get("q", "")[:200],
        kind=args.get("kind", ""),
        licence=args.get("licence", ""),
        beat_id=int(beat) if beat.isdigit() else None,
        tag=args.get("tag", "")[:40],
        rights=services.RightsFilter(args.get("rights", ""))
        if args.get("rights", "") in {r.value for r in services.RightsFilter}
        else services.RightsFilter.ANY,
        consent=args.get("consent", ""),
    )
    settings = current_settings()
    assets = services.search_assets(
        request_session(), query, now=utcnow(), warn_days=settings.media_rights_warn_days
    )
    return render_template(
        "staff/media/index.html",
        assets=assets,
        query=query,
        beats=_beat_choices(),
        kinds=list(AssetKind),
        licences=list(LicenceKind),
        rights_filters=[r for r in services.RightsFilter if r.value],
        now=utcnow(),
        is_available=services.is_available,
        credit_line=downloads.credit_line,
    )


@bp.route("/staff/media/new", methods=["GET", "POST"])
@staff_required
def upload() -> str | Response:
    form = UploadForm()
    form.beat_ids.choices = _beat_choices()
    if form.validate_on_submit():
        file = form.file.data
        if not isinstance(file, FileStorage) or not file.filename:
            flash("Choose a file to upload.", "error")
        else:
            session = request_session()
            try:
                asset = services.upload_asset(
                    session,
                    _storage(),
                    data=file.stream.read(images.MAX_IMAGE_BYTES + 1),
                    filename=file.filename,
                    details=form.to_input(current_settings().tz),
                    owner_id=current_user.id,
                    now=utcnow(),
                )
            except DomainError as exc:
                session.rollback()
                flash(exc.message, "error")
            else:
                flash(f"“{asset.title}” is in the library.", "success")
                return redirect(url_for("media.show", asset_id=asset.id), 303)
    return render_template("staff/media/upload.html", form=form)


@bp.route("/staff/media/<int:asset_id>", methods=["GET", "POST"])
@staff_required
def show(asset_id: int) -> str | Response:
    session = request_session()
    asset = _asset(asset_id)
    zone = current_settings().tz
    form = AssetForm()
    form.beat_ids.choices = _beat_choices()
    if request.method == "GET":
        form.fill_from(asset, zone)
    elif form.validate_on_submit():
        try:
            changed = services.update_asset(
                session,
                asset,
                form.to_input(zone),
                actor_id=current_user.id,
                now=utcnow(),
                storage=_storage(),
            )
        except DomainError as exc:
            session.rollback()
            flash(exc.message, "error")
        else:
            flash("Saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("media.show", asset_id=asset.id), 303)
    use_form = UseInReleaseForm(prefix="use")
    use_form.release_id.choices = [
        (r.id, r.title)
        for r in session.scalars(
            select(Release)
            .where(Release.status.in_(EDITABLE))
            .order_by(Release.id.desc())
            .limit(100)
        )
        if can_edit(current_user, r)
    ]
    return render_template(
        "staff/media/show.html",
        asset=asset,
        form=form,
        use_form=use_form,
        used_in=services.where_used(session, asset.id),
        is_available=services.is_available(asset, utcnow()),
        credit_line=downloads.credit_line(asset),
        copyright_notice=downloads.copyright_notice(asset),
        usage_terms=downloads.usage_terms(asset),
        delete_form=DeleteAssetForm(prefix="delete"),
        is_deleted=asset.rights_state is RightsState.DELETED,
    )


@bp.post("/staff/media/<int:asset_id>/delete")
@staff_required
def delete(asset_id: int) -> Response:
    """Delete an asset's files; its page stays with the history. Used in releases: staff
    must confirm, having been told which releases lose it."""
    session = request_session()
    asset = _asset(asset_id)
    form = DeleteAssetForm(prefix="delete")
    if not form.validate_on_submit():
        abort(400)
    try:
        services.delete_asset(
            session,
            _storage(),
            asset,
            confirmed=bool(form.confirmed.data),
            actor_id=current_user.id,
            now=utcnow(),
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"“{asset.title}” was deleted; its history stays here.", "success")
    return redirect(url_for("media.show", asset_id=asset_id) + "#delete-h", 303)


@bp.post("/staff/media/<int:asset_id>/use")
@staff_required
def use(asset_id: int) -> Response:
    session = request_session()
    asset = _asset(asset_id)
    form = UseInReleaseForm(prefix="use")
    form.release_id.choices = [(form.release_id.data or 0, "")]
    if not form.validate_on_submit():
        abort(400)
    release = _editable_release(form.release_id.data or 0)
    try:
        services.add_to_release(
            session,
            release,
            asset,
            as_lead=bool(form.as_lead.data),
            actor_id=current_user.id,
            now=utcnow(),
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("media.show", asset_id=asset.id), 303)
    flash(f"Added to “{release.title}”.", "success")
    return redirect(url_for("releases.show", release_id=release.id) + "#gallery", 303)


@bp.get("/staff/media/<int:asset_id>/download/<size>")
@staff_required
def staff_download(asset_id: int, size: str) -> Response:
    """Staff download any asset, expired or not (to check it, or to renew its licence)."""
    return _send(_asset(asset_id), size, cache="private, no-store")


# -- a release's gallery -----------------------------------------------------------------------


def _editable_release(release_id: int) -> Release:
    release = request_session().get(Release, release_id)
    if release is None:
        abort(404)
    # The release's own rule (press officers: drafts, and their own release in review).
    if release.status not in EDITABLE or not can_edit(current_user, release):
        abort(403)
    return release


@bp.post("/staff/releases/<int:release_id>/gallery/<action>")
@staff_required
def gallery(release_id: int, action: str) -> Response:
    session = request_session()
    release = _editable_release(release_id)
    form = ReleaseItemForm()
    if not form.validate_on_submit() or action not in {"add", "lead", "remove", "up", "down"}:
        abort(400)
    asset = _asset(form.asset_id.data or 0)
    try:
        if action in {"add", "lead"}:
            services.add_to_release(
                session,
                release,
                asset,
                as_lead=action == "lead",
                actor_id=current_user.id,
                now=utcnow(),
            )
        elif action == "remove":
            services.remove_from_release(
                session, release, asset, actor_id=current_user.id, now=utcnow()
            )
        else:
            services.move_in_release(session, release, asset.id, -1 if action == "up" else 1)
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("releases.show", release_id=release.id) + "#gallery", 303)


# -- public downloads --------------------------------------------------------------------------


@bp.get("/media/library/<key>/<size>")
@public
def download(key: str, size: str) -> Response:
    """An asset of a public release, with its credit written in; gone once its rights end."""
    session = request_session()
    asset = services.asset_by_key(session, key) if len(key) == 24 else None
    if asset is None or not services.is_public_asset(session, asset, utcnow()):
        abort(404)
    return _send(asset, size, cache="public, max-age=300")


@bp.get("/media/library/<key>/r<int:revision>/<int:width>.<ext>")
@public
def rendition(key: str, revision: int, width: int, ext: str) -> Response:
    """A page picture. Its URL names the metadata revision, so it never changes and may be
    cached for a year; pages stop naming it when its rights end, and it answers 404 then."""
    session = request_session()
    asset = services.asset_by_key(session, key) if len(key) == 24 else None
    if asset is None or asset.revision != revision:
        abort(404)
    if not services.is_public_asset(session, asset, utcnow()):
        abort(404)
    try:
        prepared = downloads.prepare_rendition(_storage(), asset, width, ext)
    except NotFound:
        abort(404)
    response = _respond(prepared, cache="public, max-age=31536000, immutable")
    response.headers.pop("Content-Disposition", None)
    return response


@bp.get("/media")
@public
def page() -> Response:
    """The newsroom's media page: logos, spokespeople, fact sheets, with credits and terms."""
    from distributor.newsroom.views import public_context

    session = request_session()
    response = make_response(
        render_template(
            "newsroom/media.html",
            sections=services.media_page(session, utcnow()),
            media_credit=downloads.credit_line,
            media_terms=downloads.usage_terms,
            **public_context(),
        )
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/releases/<slug>/press-kit.zip")
@public
def press_kit(slug: str) -> Response:
    """The public release as a zip: text, HTML, pictures and documents, CREDITS.txt."""
    session = request_session()
    now = utcnow()
    try:
        release = public_release(session, slug, now)
    except NotFound:
        abort(404)
    settings = current_settings()
    assets = [m.asset for m in services.visible_release_media(session, release.id, now)]
    prepared = downloads.press_kit(
        _storage(),
        release,
        assets,
        org_name=get_organisation(session, settings).name,
        release_url=f"{settings.public_base_url}/releases/{release.slug}",
    )
    return _respond(prepared, cache="public, max-age=300")


def _send(asset: MediaAsset, size: str, *, cache: str) -> Response:
    try:
        prepared = downloads.prepare_download(_storage(), asset, size)
    except (NotFound, MediaFileMissing):
        abort(404)
    return _respond(prepared, cache=cache)


def _respond(prepared: downloads.Download, *, cache: str) -> Response:
    response: Response = stored_response(
        _storage(),
        prepared.key,
        prepared.content_type,
        cache=cache,
        download_name=prepared.filename,
    )
    return response
