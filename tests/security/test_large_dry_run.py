"""Finding 16: a large CSV's dry run runs in the worker, with progress, not in the request."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from distributor.audience import imports
from distributor.audience.models import ImportJob, ImportStatus, LawfulBasis
from distributor.db import Database
from distributor.settings import Settings


def _job(session: Session, rows: int) -> ImportJob:
    content = "email,name\n" + "".join(f"p{n}@example.org,Person {n}\n" for n in range(rows))
    job = ImportJob(
        filename="big.csv",
        content=content,
        column_map='{"headers": ["email", "name"], "delimiter": ","}',
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
    )
    session.add(job)
    session.flush()
    return job


def test_a_large_file_is_checked_by_the_worker_with_progress(
    db: Database, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[Any] = []
    monkeypatch.setattr(imports, "enqueue_after_commit", lambda s, task, *a: queued.append(a))
    job = _job(session, 20_000)  # about 600 KB
    imports.preview_import(
        session,
        job.id,
        settings=settings,
        mapping={"email": "email", "name": "name"},
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        beat_ids=[],
        media_list_id=None,
    )
    assert job.status is ImportStatus.CHECKING and queued == [(job.id,)]
    status = imports.import_status(job)
    assert status["status"] == "checking" and not status["is_finished"]
    session.commit()

    imports.run_dry_run_job(db, job.id, settings=settings)
    session.expire_all()
    assert job.status is ImportStatus.PREVIEWED
    assert job.total_rows == 20_000 and job.valid_rows == 20_000
    imports.run_dry_run_job(db, job.id, settings=settings)  # redelivered: nothing to do
    assert job.status is ImportStatus.PREVIEWED


def test_a_small_file_is_still_checked_at_once(session: Session, settings: Settings) -> None:
    job = _job(session, 50)
    imports.preview_import(
        session,
        job.id,
        settings=settings,
        mapping={"email": "email"},
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        beat_ids=[],
        media_list_id=None,
    )
    assert job.status is ImportStatus.PREVIEWED and job.valid_rows == 50


def test_a_file_wider_than_anyone_maps_is_refused_at_upload(
    session: Session, settings: Settings
) -> None:
    """A 100,000-column header would otherwise become a mapping page built in the request."""
    from distributor.audience.csv_io import MAX_COLUMNS
    from distributor.errors import ValidationFailed

    wide = ",".join(f"c{i}" for i in range(100_000)).encode() + b"\n" + b"x," * 10 + b"\n"
    with pytest.raises(ValidationFailed, match="100,000 columns"):
        imports.create_import_job(
            session, filename="wide.csv", data=wide, settings=settings, by=None
        )
    just = ",".join(["email"] + [f"c{i}" for i in range(MAX_COLUMNS - 1)]).encode() + b"\n"
    job = imports.create_import_job(
        session, filename="ok.csv", data=just + b"a@example.org\n", settings=settings, by=None
    )
    assert job.status is ImportStatus.UPLOADED
