"""CSV import: clear errors for bad files, a dry run with per-row problems, all-or-nothing runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.audience import imports
from distributor.audience.models import (
    Beat,
    ImportJob,
    ImportStatus,
    Journalist,
    LawfulBasis,
    MediaList,
    Outlet,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    media_list_members,
)
from distributor.audience.services import suppress
from distributor.csv_cells import escape_cell
from distributor.db import Database
from distributor.errors import ValidationFailed
from distributor.settings import Settings
from tests.support.forms import csrf_token

GOOD_CSV = (
    "Email,Full name,Publication,Country\n"
    "ana@example.org,Ana Lima,Coastal Times,PT\n"
    "ben@example.net,Ben Okafor,Harbour Radio,GB\n"
    "not-an-address,Nobody,,\n"
    "ANA@example.org,Ana again,,\n"
    "old@example.com,Old Friend,,\n"
    "gone@example.com,Gone,,\n"
    "cy@example.org,Cy,Coastal Times,Portugal\n"
    "dee@example.org,Dee Park,Harbour Radio,DE\n"
)


def _counts(session: Session) -> tuple[int, int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(Journalist)) or 0,
        session.scalar(select(func.count()).select_from(Outlet)) or 0,
        session.scalar(select(func.count()).select_from(Subscription)) or 0,
        session.scalar(select(func.count()).select_from(media_list_members)) or 0,
    )


@pytest.fixture()
def world(session: Session) -> dict[str, Any]:
    beat = Beat(name="Harbours", slug="harbours-i", description="", is_public=True)
    media_list = MediaList(name="Import desk", description="")
    old = Journalist(email="old@example.com", email_normalized="old@example.com", name="Old")
    session.add_all([beat, media_list, old])
    session.flush()
    suppress(session, "gone@example.com", SuppressionReason.HARD_BOUNCE)
    session.commit()
    return {"beat": beat, "list": media_list, "old": old}


def _previewed(
    session: Session, settings: Settings, world: dict[str, Any], text: str = GOOD_CSV
) -> ImportJob:
    job = imports.create_import_job(
        session, filename="desk.csv", data=text.encode(), settings=settings, by=None
    )
    imports.preview_import(
        session,
        job.id,
        settings=settings,
        mapping={
            "email": "Email",
            "name": "Full name",
            "outlet": "Publication",
            "country": "Country",
        },
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        beat_ids=[world["beat"].id],
        media_list_id=world["list"].id,
    )
    job.status = ImportStatus.QUEUED
    session.commit()
    return job


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02PK\x03\x04binary", "binary"),
        ("email\nj\xe9r\xf4me@example.org\n".encode("latin-1"), "not UTF-8"),
        (b",,,\nx@example.org,,,\n", "name the columns"),
        (b"email,email\nx@example.org,y@example.org\n", "same name"),
        (b"email\n" + b"x@example.org\n" * 200, "limit"),
    ],
)
def test_malformed_or_oversized_files_get_a_clear_error(
    session: Session, settings: Settings, data: bytes, message: str
) -> None:
    small = Settings(**{**settings.__dict__, "import_max_bytes": 1000})
    with pytest.raises(ValidationFailed, match=message):
        imports.create_import_job(session, filename="bad.csv", data=data, settings=small, by=None)
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_dry_run_reports_every_problem_row(
    session: Session, settings: Settings, world: dict[str, Any]
) -> None:
    before = _counts(session)
    job = _previewed(session, settings, world)
    assert _counts(session) == before  # a dry run writes no journalist
    problems = {(p.row_number, p.kind) for p in imports.preview_problems(session, job.id)}
    assert problems == {
        (4, "invalid"),
        (5, "duplicate_in_file"),
        (6, "existing"),
        (7, "suppressed"),
        (8, "invalid"),  # "Portugal" is not a country code
    }
    assert (job.total_rows, job.valid_rows, job.existing_count, job.error_count) == (8, 3, 1, 4)


def test_import_adds_rows_with_lawful_basis_beats_and_list(
    db: Database, session: Session, settings: Settings, world: dict[str, Any]
) -> None:
    job = _previewed(session, settings, world)
    result = imports.run_import_job(db, job.id, settings=settings, chunk_size=2)
    assert result is not None and result.status == ImportStatus.SUCCEEDED, (
        result and result.error_message
    )
    assert (result.created_count, result.existing_count) == (3, 1)
    assert result.content == ""  # the uploaded file is not kept after the import
    session.expire_all()
    ana = session.scalar(select(Journalist).where(Journalist.email_normalized == "ana@example.org"))
    assert ana is not None and ana.name == "Ana Lima" and ana.country == "PT"
    assert ana.outlet is not None and ana.outlet.name == "Coastal Times"
    assert ana.lawful_basis == LawfulBasis.LEGITIMATE_INTEREST
    [sub] = ana.subscriptions
    assert (
        sub.status == SubscriptionStatus.CONFIRMED
        and sub.consent_method == "import:legitimate_interest"
    )
    members = set(
        session.scalars(
            select(media_list_members.c.journalist_id).where(
                media_list_members.c.media_list_id == world["list"].id
            )
        )
    )
    assert world["old"].id in members and ana.id in members and len(members) == 4
    assert (
        session.scalar(select(Journalist).where(Journalist.email_normalized == "gone@example.com"))
        is None
    )
    # Redelivery of the task finds nothing to do.
    again = imports.run_import_job(db, job.id, settings=settings)
    assert again is not None and again.status == ImportStatus.SUCCEEDED
    assert session.scalar(select(func.count()).select_from(Journalist)) == 4


def test_an_import_that_fails_halfway_leaves_nothing_behind(
    db: Database, session: Session, settings: Settings, world: dict[str, Any]
) -> None:
    rows = "".join(f"p{n}@example.org,Person {n},Outlet {n % 3},GB\n" for n in range(50))
    job = _previewed(session, settings, world, "Email,Full name,Publication,Country\n" + rows)
    before = _counts(session)
    chunks: list[int] = []

    def crash_after_two_chunks(done: int) -> None:
        chunks.append(done)
        if len(chunks) == 2:
            raise RuntimeError("worker lost its database connection")

    result = imports.run_import_job(
        db, job.id, settings=settings, chunk_size=10, on_chunk=crash_after_two_chunks
    )
    assert chunks == [10, 20]  # rows had been inserted when it failed
    assert result is not None and result.status == ImportStatus.FAILED
    assert "nothing was imported" in result.error_message
    session.expire_all()
    assert _counts(session) == before


@pytest.mark.usefixtures("session", "world")
def test_import_through_the_staff_ui(
    client: FlaskClient,
    logged_in: Callable[[Role], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distributor.audience import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.run_import, "delay", lambda job_id: queued.append(job_id))
    logged_in(Role.EDITOR)
    token = csrf_token(client, "/staff/audience/imports")
    response = client.post(
        "/staff/audience/imports",
        data={"csrf_token": token, "file": (io.BytesIO(GOOD_CSV.encode()), "desk.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    map_url = response.headers["Location"]
    page = client.get(map_url).get_data(as_text=True)
    assert 'value="Email" selected' in page  # the email column was recognised
    token = csrf_token(client, map_url)
    response = client.post(
        map_url,
        data={
            "csrf_token": token,
            "map_email": "Email",
            "map_name": "Full name",
            "lawful_basis": "consent",
            "media_list": "0",
        },
    )
    assert response.status_code == 302
    job_url = response.headers["Location"]
    preview = client.get(job_url).get_data(as_text=True)
    assert "Dry run" in preview and "duplicate in file" in preview
    start = client.post(f"{job_url}/start", data={"csrf_token": csrf_token(client, job_url)})
    assert start.status_code == 302
    status = client.get(f"{job_url}/status").get_json()
    assert status["status"] == "queued" and status["is_finished"] is False
    assert len(queued) == 1


def test_export_escapes_formula_cells(
    client: FlaskClient, logged_in: Callable[[Role], Any], session: Session
) -> None:
    session.add(
        Journalist(
            email="calc@example.org",
            email_normalized="calc@example.org",
            name='=HYPERLINK("http://x")',
            notes="+1 call",
            role="@desk",
        )
    )
    session.commit()
    logged_in(Role.EDITOR)
    response = client.get("/staff/audience/journalists/export.csv?q=calc")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][0] == "email"
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["name"] == '\'=HYPERLINK("http://x")'
    assert row["notes"] == "'+1 call" and row["role"] == "'@desk"
    assert escape_cell("-2") == "'-2" and escape_cell("\tx") == "'\tx"
    assert escape_cell("plain") == "plain"


def test_press_officers_cannot_import(
    client: FlaskClient, logged_in: Callable[[Role], Any]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    assert client.get("/staff/audience/imports").status_code == 403


def test_sweep_finds_imports_the_broker_lost(
    session: Session, settings: Settings, world: dict[str, Any]
) -> None:
    import datetime as dt

    from distributor.db import utcnow

    job = _previewed(session, settings, world)  # queued
    now = utcnow()
    job.queued_at = now - dt.timedelta(minutes=1)
    session.commit()
    assert imports.stalled_imports(session, now=now) == []
    assert imports.stalled_imports(session, now=now + dt.timedelta(minutes=5)) == [job.id]
    job.status, job.started_at = ImportStatus.RUNNING, now
    session.commit()
    assert imports.stalled_imports(session, now=now + dt.timedelta(minutes=30)) == []
    assert imports.stalled_imports(session, now=now + dt.timedelta(hours=2)) == [job.id]
