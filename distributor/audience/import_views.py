"""Staff pages for CSV import (upload, map, dry run, progress) and export."""

from __future__ import annotations

from collections.abc import Iterator

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from distributor.audience import csv_io, services
from distributor.audience import imports as import_jobs
from distributor.audience.dry_run import job_layout
from distributor.audience.forms import ActionForm, MappingForm, UploadForm
from distributor.audience.models import ImportStatus, LawfulBasis
from distributor.audience.views import bp, journalist_filters, journalist_query_filters
from distributor.db import get_db, request_session
from distributor.errors import DomainError
from distributor.mail.relay_check import current_relay_check
from distributor.security import editor_required
from distributor.settings import current_settings


@bp.route("/imports", methods=["GET", "POST"])
@editor_required
def imports() -> tuple[str, int] | Response:
    session = request_session()
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        # Read one byte past the limit: enough to know the file is too big, no more.
        data = upload.stream.read(current_settings().import_max_bytes + 1)
        try:
            job = import_jobs.create_import_job(
                session,
                filename=upload.filename or "upload.csv",
                data=data,
                settings=current_settings(),
                by=current_user,
            )
        except DomainError as exc:
            form.file.errors = [*form.file.errors, exc.message]
            status = 422
        else:
            return redirect(url_for("audience.map_import", job_id=job.id))
    return render_template(
        "staff/audience/imports.html",
        form=form,
        jobs=import_jobs.list_import_jobs(session),
        max_mb=current_settings().import_max_bytes // 1_048_576,
    ), status


@bp.route("/imports/<int:job_id>/map", methods=["GET", "POST"])
@editor_required
def map_import(job_id: int) -> str | Response:
    session = request_session()
    job = import_jobs.get_import_job(session, job_id)
    if job.status not in (ImportStatus.UPLOADED, ImportStatus.PREVIEWED):
        return redirect(url_for("audience.import_job", job_id=job.id))
    layout = job_layout(job)
    form = MappingForm()
    beats = services.list_beats(session)
    form.beats.choices = [SelectChoice(b.id, b.name) for b in beats]
    form.media_list.choices = [SelectChoice(0, "— none —")] + [
        SelectChoice(m.id, m.name) for m, _count in services.list_media_lists(session)
    ]
    if not form.is_submitted():
        form.lawful_basis.data = job.lawful_basis.value
        form.beats.data = [int(b) for b in job.beat_ids.split(",") if b]
        form.media_list.data = job.media_list_id or 0
    mapping = dict(layout.get("fields", {}))
    error = ""
    if form.validate_on_submit():
        mapping = {
            name: request.form.get(f"map_{name}", "")
            for name in csv_io.FIELDS
            if request.form.get(f"map_{name}")
        }
        try:
            import_jobs.preview_import(
                session,
                job.id,
                settings=current_settings(),
                mapping=mapping,
                lawful_basis=LawfulBasis(form.lawful_basis.data),
                beat_ids=list(form.beats.data or []),
                media_list_id=form.media_list.data or None,
                relay=current_relay_check(),
            )
        except DomainError as exc:
            error = exc.message
        else:
            return redirect(url_for("audience.import_job", job_id=job.id))
    sample = list(_sample_rows(job))
    return render_template(
        "staff/audience/import_map.html",
        job=job,
        form=form,
        headers=layout.get("headers", []),
        mapping=mapping,
        fields=csv_io.FIELDS,
        labels=csv_io.FIELD_LABELS,
        sample=sample,
        error=error,
    )


def _sample_rows(job: object, limit: int = 3) -> list[list[str]]:
    import csv
    import io

    from distributor.audience.models import ImportJob

    assert isinstance(job, ImportJob)
    reader = csv.reader(
        io.StringIO(job.content[:20_000]),
        delimiter=job_layout(job).get("delimiter", ","),
    )
    rows: list[list[str]] = []
    try:
        next(reader)
        for row in reader:
            rows.append(row)
            if len(rows) >= limit:
                break
    except (csv.Error, StopIteration):
        pass
    return rows


@bp.get("/imports/<int:job_id>")
@editor_required
def import_job(job_id: int) -> str:
    session = request_session()
    job = import_jobs.get_import_job(session, job_id)
    problems = import_jobs.preview_problems(session, job.id)
    media_list = services.get_media_list(session, job.media_list_id) if job.media_list_id else None
    beat_ids = {int(b) for b in job.beat_ids.split(",") if b}
    return render_template(
        "staff/audience/import_job.html",
        job=job,
        problems=problems,
        problem_limit=import_jobs.PREVIEW_ERROR_LIMIT,
        beats=[b for b in services.list_beats(session) if b.id in beat_ids],
        media_list=media_list,
        status=import_jobs.import_status(job),
        action_form=ActionForm(),
    )


@bp.post("/imports/<int:job_id>/start")
@editor_required
def start_import(job_id: int) -> Response:
    if ActionForm().validate_on_submit():
        try:
            import_jobs.start_import(request_session(), job_id)
        except DomainError as exc:
            flash(exc.message, "error")
    return redirect(url_for("audience.import_job", job_id=job_id))


@bp.get("/imports/<int:job_id>/status")
@editor_required
def import_status(job_id: int) -> Response:
    job = import_jobs.get_import_job(request_session(), job_id)
    response = jsonify(import_jobs.import_status(job))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/journalists/export.csv")
@editor_required
def export_journalists() -> Response:
    filters = journalist_query_filters(journalist_filters())
    db = get_db()

    def stream() -> Iterator[str]:
        # The body streams after the request's own session is committed and closed, so the
        # export reads through a session of its own, closed when the download ends.
        session = db.session()
        try:
            yield from csv_io.export_journalists_csv(session, **filters)
        finally:
            session.close()

    response = current_app.response_class(stream(), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="journalists.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
