"""CSV import jobs: upload, column mapping, the dry run, and the all-or-nothing worker run.

The worker validates in one read pass, then inserts everything in ONE transaction (``bulk.py``;
no ORM object per row): on PostgreSQL each chunk goes by COPY into a temporary staging table
and from there into the audience by a few set-based statements, elsewhere by bulk
``INSERT ... ON CONFLICT DO NOTHING`` statements; a failure at any point leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select, text, update
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.audience.bulk import (
    CHUNK_SIZE,
    ProgressCallback,
    chunks,
    import_rows,
)
from distributor.audience.csv_io import (
    FIELDS,
    guess_mapping,
    inspect_csv,
)
from distributor.audience.dry_run import analyse, job_layout
from distributor.audience.models import (
    Beat,
    ImportJob,
    ImportRowError,
    ImportStatus,
    LawfulBasis,
    MediaList,
)
from distributor.db import Database, utcnow
from distributor.errors import Conflict, DomainError, NotFound, ValidationFailed
from distributor.logs import get_logger
from distributor.mail.addresses import RelayExtensions
from distributor.settings import Settings
from distributor.tasks_api import TaskRef, enqueue_after_commit

log = get_logger("distributor.audience.import")

RUN_IMPORT = TaskRef("audience.run_import")
RUN_DRY_RUN = TaskRef("audience.run_dry_run")
PREVIEW_ERROR_LIMIT = 200
STALE_RUN = dt.timedelta(hours=1)
# Files larger than this are checked by a worker, not in the request (about 2,000 typical rows).
INLINE_DRY_RUN_CHARS = 256 * 1024


def create_import_job(
    session: Session, *, filename: str, data: bytes, settings: Settings, by: User | None
) -> ImportJob:
    """Accept an uploaded CSV file; the job then waits for its column mapping."""
    text, shape = inspect_csv(data, max_bytes=settings.import_max_bytes)
    job = ImportJob(
        filename=filename[:255],
        content=text,
        column_map=json.dumps(
            {
                "delimiter": shape.delimiter,
                "headers": shape.headers,
                "fields": guess_mapping(shape.headers),
            }
        ),
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        status=ImportStatus.UPLOADED,
        created_by_id=by.id if by is not None else None,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_import_job(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound("No such import")
    return job


def list_import_jobs(session: Session, limit: int = 20) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def preview_import(
    session: Session,
    job_id: int,
    *,
    settings: Settings,
    mapping: dict[str, str],
    lawful_basis: LawfulBasis,
    beat_ids: list[int],
    media_list_id: int | None,
    relay: RelayExtensions | None = None,
) -> ImportJob:
    """Store the staff's choices and run the dry run; its row errors are kept for review."""
    job = get_import_job(session, job_id)
    if job.status not in (ImportStatus.UPLOADED, ImportStatus.PREVIEWED):
        raise Conflict("This import has already started")
    layout = job_layout(job)
    headers = layout.get("headers", [])
    fields = {
        name: header for name, header in mapping.items() if name in FIELDS and header in headers
    }
    if "email" not in fields:
        raise ValidationFailed("Choose which column holds the email address.")
    if len(set(fields.values())) != len(fields):
        raise ValidationFailed("Each column can fill only one field.")
    beats = list(session.scalars(select(Beat.id).where(Beat.id.in_(beat_ids)))) if beat_ids else []
    if media_list_id is not None and session.get(MediaList, media_list_id) is None:
        raise ValidationFailed("That media list no longer exists.")
    layout["fields"] = fields
    job.column_map = json.dumps(layout)
    job.lawful_basis = lawful_basis
    job.beat_ids = ",".join(str(b) for b in sorted(beats))
    job.media_list_id = media_list_id
    session.execute(delete(ImportRowError).where(ImportRowError.job_id == job.id))
    if len(job.content) > INLINE_DRY_RUN_CHARS:
        # A large file (a million rows, a hundred thousand columns) takes longer to check than
        # a web request may last: the worker runs the dry run and the page shows its progress.

        job.status = ImportStatus.CHECKING
        job.processed_rows = 0
        job.total_rows = max(job.content.count("\n"), 1)  # an estimate until the run ends
        job.queued_at = utcnow()
        session.flush()
        enqueue_after_commit(session, RUN_DRY_RUN, job.id)
        return job
    _store_dry_run(session, job, analyse(session, job, settings, relay=relay))
    return job


def _store_dry_run(session: Session, job: ImportJob, analysis: Any) -> None:
    session.execute(delete(ImportRowError).where(ImportRowError.job_id == job.id))
    for chunk in chunks(analysis.problems, CHUNK_SIZE):
        session.execute(
            insert(ImportRowError),
            [
                {
                    "job_id": job.id,
                    "row_number": p.row_number,
                    "email": p.email,
                    "kind": p.kind,
                    "message": p.message,
                }
                for p in chunk
            ],
        )
    job.total_rows = analysis.total_rows
    job.valid_rows = len(analysis.rows)
    job.existing_count = len(analysis.existing_ids)
    job.error_count = analysis.error_count
    job.status = ImportStatus.PREVIEWED
    session.flush()
    session.expire(job, ["row_errors"])


def run_dry_run_job(
    db: Database, job_id: int, *, settings: Settings, relay: RelayExtensions | None = None
) -> None:
    """The worker's dry run of a large file; progress goes out in short transactions."""
    last_report = [0.0]

    def report(processed: int) -> None:
        now_clock = time.monotonic()
        if now_clock - last_report[0] < 1.0:
            return
        last_report[0] = now_clock
        with db.session() as s:
            s.execute(
                update(ImportJob).where(ImportJob.id == job_id).values(processed_rows=processed)
            )
            s.commit()

    with db.session() as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.status != ImportStatus.CHECKING:
            return  # a redelivered task: done already, or the mapping changed since
        try:
            analysis = analyse(session, job, settings, progress=report, relay=relay)
        except DomainError as exc:
            job.status = ImportStatus.UPLOADED
            job.error_message = exc.message
            session.commit()
            return
        session.refresh(job)
        if job.status != ImportStatus.CHECKING:
            return
        _store_dry_run(session, job, analysis)
        job.processed_rows = job.total_rows
        session.commit()


def preview_problems(
    session: Session, job_id: int, limit: int = PREVIEW_ERROR_LIMIT
) -> list[ImportRowError]:
    return list(
        session.scalars(
            select(ImportRowError)
            .where(ImportRowError.job_id == job_id)
            .order_by(ImportRowError.row_number)
            .limit(limit)
        )
    )


def start_import(session: Session, job_id: int) -> ImportJob:
    """Hand a previewed import to a worker (after this transaction commits)."""
    job = get_import_job(session, job_id)
    if job.status != ImportStatus.PREVIEWED:
        raise Conflict("Only a previewed import can be started")
    job.status = ImportStatus.QUEUED
    job.queued_at = utcnow()
    job.processed_rows = 0
    session.flush()
    enqueue_after_commit(session, RUN_IMPORT, job.id)
    return job


def run_import_job(
    db: Database,
    job_id: int,
    *,
    settings: Settings,
    chunk_size: int | None = None,
    on_chunk: ProgressCallback | None = None,
    relay: RelayExtensions | None = None,
) -> ImportJob | None:
    """Run one import in the worker: validate again, insert all rows in one transaction.

    Progress is written through short separate transactions so the UI can poll it. On any
    error the import transaction rolls back as a whole and the job is marked failed.
    ``on_chunk`` is called after each inserted chunk (tests use it to fail half way).
    """
    # Claim the job with one conditional UPDATE so two workers (a redelivery, the sweep)
    # never run it at once; a RUNNING job is reclaimed only when its worker is long gone.
    now = utcnow()
    with db.session() as s:
        claimed = cast(
            CursorResult[Any],
            s.execute(
                update(ImportJob)
                .where(
                    ImportJob.id == job_id,
                    (ImportJob.status == ImportStatus.QUEUED)
                    | (
                        (ImportJob.status == ImportStatus.RUNNING)
                        & (ImportJob.started_at < now - STALE_RUN)
                    ),
                )
                .values(status=ImportStatus.RUNNING, started_at=now, processed_rows=0)
            ),
        ).rowcount
        s.commit()
        if not claimed:
            return s.get(ImportJob, job_id)  # finished, running elsewhere, or never started
    # SQLite allows one writer: progress can be written while we read, not while we insert.
    can_report_while_writing = db.engine.dialect.name != "sqlite"

    last_report = [0.0]

    def report(processed: int, *, force: bool = False) -> None:
        # At most one progress write a second, each its own short transaction.
        now_clock = time.monotonic()
        if not force and now_clock - last_report[0] < 1.0:
            return
        last_report[0] = now_clock
        with db.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                # A progress figure lost in a crash costs nothing: skip the WAL flush wait.
                s.execute(text("SET LOCAL synchronous_commit TO OFF"))
            s.execute(
                update(ImportJob).where(ImportJob.id == job_id).values(processed_rows=processed)
            )
            s.commit()

    try:
        with db.session() as reader:
            job = reader.get(ImportJob, job_id)
            assert job is not None
            clock = time.perf_counter()
            analysis = analyse(
                reader, job, settings, progress=lambda n: report(n // 2), relay=relay
            )
            log.info(
                "import validated", job_id=job_id, seconds=round(time.perf_counter() - clock, 2)
            )
            reader.rollback()
        total = max(analysis.total_rows, 1)
        report(total // 2, force=True)

        with db.session() as work:
            job = work.get(ImportJob, job_id)
            assert job is not None
            valid = max(len(analysis.rows), 1)

            def inserted(done: int) -> None:
                if on_chunk is not None:
                    on_chunk(done)
                if can_report_while_writing:
                    report(total // 2 + (total - total // 2) * done // valid)

            clock = time.perf_counter()
            counts = import_rows(work, job, analysis, progress=inserted, chunk_size=chunk_size)
            log.info(
                "import inserted", job_id=job_id, seconds=round(time.perf_counter() - clock, 2)
            )
            job.status = ImportStatus.SUCCEEDED
            job.total_rows = analysis.total_rows
            job.processed_rows = analysis.total_rows
            job.created_count = counts.created
            job.existing_count = counts.existing
            job.error_count = analysis.error_count
            job.finished_at = utcnow()
            job.content = ""  # the file holds personal data we no longer need
            clock = time.perf_counter()
            work.commit()
            log.info(
                "import committed",
                job_id=job_id,
                created=counts.created,
                seconds=round(time.perf_counter() - clock, 2),
            )
    except Exception as exc:
        log.exception("import failed", job_id=job_id)
        with db.session() as s:
            s.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status=ImportStatus.FAILED,
                    error_message=_failure_message(exc),
                    finished_at=utcnow(),
                    processed_rows=0,
                    created_count=0,
                )
            )
            s.commit()
    with db.session() as s:
        return s.get(ImportJob, job_id)


def stalled_dry_runs(session: Session, *, now: dt.datetime | None = None) -> list[int]:
    """Large-file dry runs queued a while ago that no worker finished (the broker lost them)."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(ImportJob.id).where(
                ImportJob.status == ImportStatus.CHECKING,
                ImportJob.queued_at < now - STALE_RUN,
            )
        )
    )


def stalled_imports(session: Session, *, now: dt.datetime | None = None) -> list[int]:
    """Imports queued a while ago that no worker picked up, or whose worker died."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(ImportJob.id)
            .where(
                (
                    (ImportJob.status == ImportStatus.QUEUED)
                    & (ImportJob.created_at < now - dt.timedelta(minutes=5))
                )
                | (
                    (ImportJob.status == ImportStatus.RUNNING)
                    & (ImportJob.started_at < now - STALE_RUN)
                )
            )
            .where(ImportJob.status != ImportStatus.CHECKING)
        )
    )


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed):
        return exc.message
    return f"The import stopped with an error and nothing was imported ({type(exc).__name__})."


def import_status(job: ImportJob) -> dict[str, Any]:
    """The JSON the progress bar polls."""
    total = max(job.total_rows, 1)
    percent = (
        100 if job.status == ImportStatus.SUCCEEDED else min(99, job.processed_rows * 100 // total)
    )
    if job.status == ImportStatus.CHECKING:
        percent = min(99, job.processed_rows * 100 // total)
    return {
        "id": job.id,
        "status": job.status.value,
        "percent": percent
        if job.status in (ImportStatus.RUNNING, ImportStatus.SUCCEEDED, ImportStatus.CHECKING)
        else 0,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "created": job.created_count,
        "existing": job.existing_count,
        "errors": job.error_count,
        "message": job.error_message,
        "is_finished": job.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED),
    }
