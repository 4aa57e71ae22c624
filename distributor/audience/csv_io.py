"""CSV import (upload, map, dry run, all-or-nothing bulk insert) and CSV export of journalists.

The import validates in one read pass, then inserts everything in ONE transaction with bulk
``INSERT ... ON CONFLICT DO NOTHING`` statements in chunks (no ORM object per row), so a failure
at any point leaves nothing behind and 100,000 rows fit well inside a minute on PostgreSQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import CursorResult, delete, func, insert, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.audience.models import (
    Beat,
    DeliveryMode,
    ImportJob,
    ImportRowError,
    ImportStatus,
    Journalist,
    LawfulBasis,
    MediaList,
    Outlet,
    Subscription,
    SubscriptionStatus,
    Suppression,
    media_list_members,
)
from distributor.audience.services import address_hash, journalist_query
from distributor.celery_app import enqueue_after_commit
from distributor.db import Database, utcnow
from distributor.errors import Conflict, NotFound, ValidationFailed
from distributor.logs import get_logger
from distributor.settings import Settings

log = get_logger("distributor.audience.import")

FIELDS: tuple[str, ...] = (
    "email",
    "name",
    "outlet",
    "role",
    "country",
    "language",
    "phone",
    "notes",
)
FIELD_LABELS = {
    "email": "Email address",
    "name": "Name",
    "outlet": "Outlet",
    "role": "Role",
    "country": "Country (2-letter code)",
    "language": "Language",
    "phone": "Phone",
    "notes": "Notes",
}
_MAX_LENGTHS = {"name": 200, "outlet": 200, "role": 120, "language": 12, "phone": 60}
_HEADER_GUESSES = {
    "email": {"email", "e-mail", "email address", "e-mail address", "mail", "address"},
    "name": {"name", "full name", "journalist", "contact", "contact name"},
    "outlet": {"outlet", "publication", "media", "media outlet", "newspaper", "company"},
    "role": {"role", "title", "job title", "position", "desk"},
    "country": {"country", "country code"},
    "language": {"language", "lang", "locale"},
    "phone": {"phone", "telephone", "mobile", "tel", "phone number"},
    "notes": {"notes", "note", "comments", "comment"},
}
CHUNK_SIZE = 5000
PREVIEW_ERROR_LIMIT = 200
STALE_RUN = dt.timedelta(hours=1)

ProgressCallback = Callable[[int], None]


# -- reading the upload --------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvShape:
    delimiter: str
    headers: list[str]


def inspect_csv(data: bytes, *, max_bytes: int) -> tuple[str, CsvShape]:
    """Decode and check an uploaded file; raise ``ValidationFailed`` with a clear reason."""
    if len(data) > max_bytes:
        raise ValidationFailed(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Split it into smaller files."
        )
    if not data.strip():
        raise ValidationFailed("The file is empty.")
    if b"\x00" in data[:65536]:
        raise ValidationFailed(
            "This does not look like a CSV file (it contains binary data). Export it from your "
            "spreadsheet as 'CSV UTF-8'."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The file is not UTF-8 text (byte {exc.start}). Export it as 'CSV UTF-8'."
        ) from exc
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    try:
        headers = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise ValidationFailed(f"The file could not be read as CSV: {exc}") from exc
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise ValidationFailed("The first row must name the columns.")
    if len(set(headers)) != len(headers):
        raise ValidationFailed("Two columns have the same name in the first row.")
    return text, CsvShape(delimiter, headers)


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """Field -> header for the headers whose names say what they hold."""
    mapping: dict[str, str] = {}
    for header in headers:
        key = re.sub(r"[_\s]+", " ", header.strip().lower())
        for name, guesses in _HEADER_GUESSES.items():
            if key in guesses and name not in mapping:
                mapping[name] = header
                break
    return mapping


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


def job_layout(job: ImportJob) -> dict[str, Any]:
    layout: dict[str, Any] = json.loads(job.column_map or "{}")
    return layout


def get_import_job(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound("No such import")
    return job


def list_import_jobs(session: Session, limit: int = 20) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


# -- the dry run ---------------------------------------------------------------------------------

# RFC 5322 dot-atom of plain ASCII "atext": the local part of nearly every real address.
_ASCII_DOT_ATOM = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


@lru_cache(maxsize=16384)
def _checked_domain(domain: str, check_dns: bool) -> str | EmailNotValidError:
    try:
        return str(validate_email(f"a@{domain}", check_deliverability=check_dns).domain)
    except EmailNotValidError as exc:
        return exc


def normalise_import_address(raw: str, *, check_dns: bool = False) -> str:
    """email-validator's verdict and normal form, lower-cased; raises ``EmailNotValidError``.

    Imports hold many addresses on few domains, and email-validator spends most of its time on
    the domain (IDNA), so a plain ASCII local part is checked here and its domain once per
    file; anything else goes through ``validate_email`` whole.
    """
    local, _, domain = raw.rpartition("@")
    if local and len(local) <= 64 and _ASCII_DOT_ATOM.fullmatch(local):
        checked = _checked_domain(domain, check_dns)
        if isinstance(checked, EmailNotValidError):
            raise checked
        address = f"{local}@{checked}"
        if len(address.encode("utf-8")) <= 254:
            return address.lower()
    return str(validate_email(raw, check_deliverability=check_dns).normalized).lower()


@dataclass
class RowProblem:
    row_number: int
    email: str
    kind: str
    message: str


@dataclass
class Analysis:
    total_rows: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)  # valid, new journalists
    existing_ids: dict[str, int] = field(default_factory=dict)  # address -> id
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(1 for p in self.problems if p.kind != "existing")


def _records(job: ImportJob) -> Iterator[tuple[int, list[str]]]:
    layout = job_layout(job)
    reader = csv.reader(io.StringIO(job.content), delimiter=layout.get("delimiter", ","))
    try:
        next(reader)  # header
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            # Row numbers as a spreadsheet shows them: the header is row 1.
            yield reader.line_num, record
    except csv.Error as exc:
        raise ValidationFailed(f"The file is malformed near line {reader.line_num}: {exc}") from exc


def analyse(
    session: Session,
    job: ImportJob,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
) -> Analysis:
    """Validate every row: address syntax, field sizes, duplicates in the file and the database."""
    layout = job_layout(job)
    headers: list[str] = layout.get("headers", [])
    mapping: dict[str, str] = layout.get("fields", {})
    if "email" not in mapping:
        raise ValidationFailed("Choose which column holds the email address.")
    positions = {
        name: headers.index(header) for name, header in mapping.items() if header in headers
    }
    width = len(headers)
    check_dns = settings.email_check_deliverability
    _checked_domain.cache_clear()  # DNS answers and memory last one file, no longer
    result = Analysis()
    seen: dict[str, int] = {}
    candidates: list[tuple[int, dict[str, str]]] = []
    for row_number, record in _records(job):
        result.total_rows += 1
        if progress is not None and result.total_rows % CHUNK_SIZE == 0:
            progress(result.total_rows)
        raw_email = record[positions["email"]].strip() if positions["email"] < len(record) else ""
        if len(record) > width:
            result.problems.append(
                RowProblem(
                    row_number,
                    raw_email[:320],
                    "invalid",
                    f"has {len(record)} cells; the header has {width}",
                )
            )
            continue
        if not raw_email:
            result.problems.append(RowProblem(row_number, "", "invalid", "no email address"))
            continue
        try:
            address = normalise_import_address(raw_email, check_dns=check_dns)
        except EmailNotValidError as exc:
            result.problems.append(RowProblem(row_number, raw_email[:320], "invalid", str(exc)))
            continue
        if address in seen:
            result.problems.append(
                RowProblem(
                    row_number, address, "duplicate_in_file", f"same address as row {seen[address]}"
                )
            )
            continue
        seen[address] = row_number
        values = {"email": address}
        problem = ""
        for name, pos in positions.items():
            if name == "email":
                continue
            value = record[pos].strip() if pos < len(record) else ""
            limit = _MAX_LENGTHS.get(name)
            if limit is not None and len(value) > limit:
                problem = f"{FIELD_LABELS[name]} is longer than {limit} characters"
                break
            if name == "country":
                value = value.upper()
                if value and not re.fullmatch(r"[A-Z]{2}", value):
                    problem = "country must be a two-letter code such as GB or DE"
                    break
            values[name] = value
        if problem:
            result.problems.append(RowProblem(row_number, address, "invalid", problem))
            continue
        candidates.append((row_number, values))

    addresses = [values["email"] for _, values in candidates]
    existing: dict[str, int] = {}
    suppressed: set[str] = set()
    for chunk in _chunks(addresses, 1000):
        existing.update(
            session.execute(
                select(Journalist.email_normalized, Journalist.id).where(
                    Journalist.email_normalized.in_(chunk)
                )
            ).all()
        )
        hashes = {address_hash(a): a for a in chunk}
        suppressed.update(
            hashes[h]
            for h in session.scalars(
                select(Suppression.address_hash).where(Suppression.address_hash.in_(list(hashes)))
            )
        )
    for row_number, values in candidates:
        address = values["email"]
        if address in existing:
            result.existing_ids[address] = existing[address]
            result.problems.append(
                RowProblem(
                    row_number, address, "existing", "already in the audience: left unchanged"
                )
            )
        elif address in suppressed:
            result.problems.append(
                RowProblem(row_number, address, "suppressed", "on the suppression list: skipped")
            )
        else:
            result.rows.append(values)
    result.problems.sort(key=lambda p: p.row_number)
    return result


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _beat_ids_of(job: ImportJob) -> list[int]:
    return [int(b) for b in job.beat_ids.split(",") if b]


def preview_import(
    session: Session,
    job_id: int,
    *,
    settings: Settings,
    mapping: dict[str, str],
    lawful_basis: LawfulBasis,
    beat_ids: list[int],
    media_list_id: int | None,
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
    analysis = analyse(session, job, settings)
    session.execute(delete(ImportRowError).where(ImportRowError.job_id == job.id))
    for chunk in _chunks(analysis.problems, CHUNK_SIZE):
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
    return job


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
    from distributor.audience.tasks import run_import

    job = get_import_job(session, job_id)
    if job.status != ImportStatus.PREVIEWED:
        raise Conflict("Only a previewed import can be started")
    job.status = ImportStatus.QUEUED
    job.queued_at = utcnow()
    job.processed_rows = 0
    session.flush()
    enqueue_after_commit(session, run_import, job.id)
    return job


# -- the import itself ---------------------------------------------------------------------------


def bulk_insert(
    session: Session,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    constants: dict[str, Any] | None = None,
    returning: tuple[str, ...] = (),
) -> list[Any]:
    """``INSERT ... ON CONFLICT DO NOTHING`` for many rows with the same keys, in one statement.

    On PostgreSQL the rows travel as one array per column and ``unnest`` turns them back into
    rows (``constants`` are sent once): one short statement per chunk, where a multi-row VALUES
    list costs the driver more to build and parse than the server needs to insert it.
    On SQLite an executemany.
    """
    if not rows:
        return []
    constants = constants or {}
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
        full = [{**row, **constants} for row in rows] if constants else rows
        if returning:
            with_returning = stmt.returning(*(table.c[c] for c in returning))
            return list(session.execute(with_returning, full).all())
        session.execute(stmt, full)
        return []
    if dialect.name != "postgresql":
        raise RuntimeError(f"bulk import does not support the {dialect.name} dialect")

    def bound(column_name: str, value: Any) -> Any:
        processor = table.c[column_name].type.bind_processor(dialect)
        return processor(value) if processor is not None else value

    def sql_type(column_name: str) -> str:
        # Column names and types come from our own table definitions, never from input.
        return str(table.c[column_name].type.compile(dialect=dialect))

    params: dict[str, Any] = {}
    arrays, scalars = [], []
    for index, column_name in enumerate(rows[0]):
        params[f"a{index}"] = [bound(column_name, row[column_name]) for row in rows]
        arrays.append(f"CAST(:a{index} AS {sql_type(column_name)}[])")
    for index, (column_name, value) in enumerate(constants.items()):
        params[f"c{index}"] = bound(column_name, value)
        scalars.append(f"CAST(:c{index} AS {sql_type(column_name)})")
    columns = [*rows[0], *constants]
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - see sql_type
        f"SELECT u.*{''.join(', ' + s for s in scalars)} FROM unnest({', '.join(arrays)}) AS u "
        "ON CONFLICT DO NOTHING"
    )
    if returning:
        statement += f" RETURNING {', '.join(returning)}"
    result = session.execute(text(statement), params)
    return list(result.all()) if returning else []


@dataclass
class ImportCounts:
    created: int = 0
    existing: int = 0
    subscriptions: int = 0
    list_members: int = 0


def import_rows(
    session: Session,
    job: ImportJob,
    analysis: Analysis,
    *,
    progress: ProgressCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> ImportCounts:
    """Bulk-insert the analysed rows. Flushes only: the caller's transaction holds it all."""
    now = utcnow()
    counts = ImportCounts(existing=len(analysis.existing_ids))

    outlet_names = {r["outlet"].lower(): r["outlet"] for r in analysis.rows if r.get("outlet")}
    outlet_ids: dict[str, int] = {}
    if outlet_names:
        known: dict[str, int] = dict(
            session.execute(select(func.lower(Outlet.name), Outlet.id)).all()
        )
        missing = [name for key, name in outlet_names.items() if key not in known]
        for chunk in _chunks(missing, chunk_size):
            bulk_insert(
                session,
                Outlet.__table__,
                [{"name": name, "website": "", "country": ""} for name in chunk],
            )
        outlet_ids = dict(session.execute(select(func.lower(Outlet.name), Outlet.id)).all())

    new_ids: dict[str, int] = {}
    done = 0
    for chunk in _chunks(analysis.rows, chunk_size):
        params = [
            {
                "email": r["email"],
                "email_normalized": r["email"],
                "name": r.get("name", ""),
                "outlet_id": outlet_ids.get(r.get("outlet", "").lower()),
                "role": r.get("role", ""),
                "country": r.get("country", ""),
                "language": r.get("language", ""),
                "phone": r.get("phone", ""),
                "notes": r.get("notes", ""),
            }
            for r in chunk
        ]
        constants = {
            "delivery_mode": DeliveryMode.EACH_RELEASE,
            "is_paused": False,
            "is_tracking_allowed": True,
            "lawful_basis": job.lawful_basis,
            "created_at": now,
            "updated_at": now,
        }
        for journalist_id, address in bulk_insert(
            session,
            Journalist.__table__,
            params,
            constants=constants,
            returning=("id", "email_normalized"),
        ):
            new_ids[address] = journalist_id
        done += len(chunk)
        if progress is not None:
            progress(done)
    counts.created = len(new_ids)
    # Someone may have added an address between the dry run and now: it counts as existing.
    raced = [r["email"] for r in analysis.rows if r["email"] not in new_ids]
    for chunk in _chunks(raced, 1000):
        analysis.existing_ids.update(
            session.execute(
                select(Journalist.email_normalized, Journalist.id).where(
                    Journalist.email_normalized.in_(chunk)
                )
            ).all()
        )
    counts.existing = len(analysis.existing_ids)

    beat_ids = _beat_ids_of(job)
    if beat_ids:
        constants = {
            "status": SubscriptionStatus.CONFIRMED,
            "source": "import",
            "consent_at": now,
            "consent_method": f"import:{job.lawful_basis.value}",
            "consent_text_version": f"import #{job.id}",
            "confirmed_at": now,
            "created_at": now,
        }
        sub_rows = [
            {"journalist_id": journalist_id, "beat_id": beat_id}
            for journalist_id in new_ids.values()
            for beat_id in beat_ids
        ]
        for chunk in _chunks(sub_rows, chunk_size):
            bulk_insert(session, Subscription.__table__, chunk, constants=constants)
        counts.subscriptions = len(sub_rows)

    if job.media_list_id is not None:
        member_rows = [
            {"media_list_id": job.media_list_id, "journalist_id": journalist_id}
            for journalist_id in [*new_ids.values(), *analysis.existing_ids.values()]
        ]
        for chunk in _chunks(member_rows, chunk_size):
            bulk_insert(session, media_list_members, chunk)
        counts.list_members = len(member_rows)
    return counts


def run_import_job(
    db: Database,
    job_id: int,
    *,
    settings: Settings,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
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

    def report(processed: int) -> None:
        with db.session() as s:
            s.execute(
                update(ImportJob).where(ImportJob.id == job_id).values(processed_rows=processed)
            )
            s.commit()

    try:
        with db.session() as reader:
            job = reader.get(ImportJob, job_id)
            assert job is not None
            clock = time.perf_counter()
            analysis = analyse(reader, job, settings, progress=lambda n: report(n // 2))
            log.info(
                "import validated", job_id=job_id, seconds=round(time.perf_counter() - clock, 2)
            )
            reader.rollback()
        total = max(analysis.total_rows, 1)
        report(total // 2)

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


def stalled_imports(session: Session, *, now: dt.datetime | None = None) -> list[int]:
    """Imports queued a while ago that no worker picked up, or whose worker died."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(ImportJob.id).where(
                (
                    (ImportJob.status == ImportStatus.QUEUED)
                    & (ImportJob.created_at < now - dt.timedelta(minutes=5))
                )
                | (
                    (ImportJob.status == ImportStatus.RUNNING)
                    & (ImportJob.started_at < now - STALE_RUN)
                )
            )
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
    return {
        "id": job.id,
        "status": job.status.value,
        "percent": percent if job.status in (ImportStatus.RUNNING, ImportStatus.SUCCEEDED) else 0,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "created": job.created_count,
        "existing": job.existing_count,
        "errors": job.error_count,
        "message": job.error_message,
        "is_finished": job.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED),
    }


# -- export --------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "email",
    "name",
    "outlet",
    "role",
    "country",
    "language",
    "phone",
    "notes",
    "lawful_basis",
    "delivery_mode",
    "is_paused",
    "beats",
    "created_at",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): prefix risky cells with an apostrophe."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_journalists_csv(session: Session, **filters: Any) -> Iterable[str]:
    """Stream the journalists matching the staff filters as CSV lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    stmt = journalist_query(**filters)
    beats_of: dict[int, list[str]] = {}
    for journalist_id, beat_name in session.execute(
        select(Subscription.journalist_id, Beat.name)
        .join(Beat, Beat.id == Subscription.beat_id)
        .where(Subscription.status == SubscriptionStatus.CONFIRMED)
        .order_by(Beat.name)
    ):
        beats_of.setdefault(journalist_id, []).append(beat_name)
    for journalist in session.scalars(stmt.execution_options(yield_per=1000)):
        row = [
            journalist.email,
            journalist.name,
            journalist.outlet.name if journalist.outlet else "",
            journalist.role,
            journalist.country,
            journalist.language,
            journalist.phone,
            journalist.notes,
            journalist.lawful_basis.value,
            journalist.delivery_mode.value,
            "yes" if journalist.is_paused else "no",
            "; ".join(beats_of.get(journalist.id, [])),
            journalist.created_at.isoformat(),
        ]
        writer.writerow([escape_cell(str(cell)) for cell in row])
        yield flush()
