"""The audience's background work in a real Celery worker: a CSV import and a confirmation mail.

web (test client) -> Redis -> worker process -> PostgreSQL/SQLite and a real SMTP server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select

from distributor.app import create_app
from distributor.audience import imports
from distributor.audience.models import (
    Beat,
    ConfirmationRequest,
    ImportJob,
    ImportStatus,
    Journalist,
    LawfulBasis,
    Outlet,
    SubscriptionStatus,
)
from distributor.audience.services import address_hash
from distributor.db import Database
from distributor.settings import Settings
from tests.support.forms import csrf_token
from tests.support.smtp import SMTPSink
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration


def _wait(predicate: Callable[[], object], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("the worker did not finish in time")


def test_import_and_confirmation_mail_run_in_a_real_worker(
    settings: Settings, live_db: Database, broker: str
) -> None:
    run = uuid.uuid4().hex[:6]
    domain = f"w{run}.example.org"
    with live_db.session() as s:
        beat = Beat(name=f"Worker beat {run}", slug=f"worker-{run}", is_public=True)
        s.add(beat)
        s.commit()
        beat_id = beat.id
    rows = "".join(f"p{i}@{domain},Person {i},Outlet {run}\n" for i in range(300))
    data = f"email,name,outlet\n{rows}not-an-address,x,y\n".encode()
    try:
        with SMTPSink() as sink:
            app_settings = Settings(
                **{**settings.__dict__, "redis_url": broker, "smtp_url": sink.url}
            )
            env = service_env(
                DATABASE_URL=settings.database_url,
                REDIS_URL=broker,
                SMTP_URL=sink.url,
                DATA_DIR=settings.data_dir,
                PUBLIC_BASE_URL="http://localhost",
            )
            app = create_app(app_settings, db=live_db)
            with celery_worker(env):
                # A CSV import, previewed and started as the staff pages do.
                with live_db.session() as s:
                    job = imports.create_import_job(
                        s, filename=f"w-{run}.csv", data=data, settings=app_settings, by=None
                    )
                    imports.preview_import(
                        s,
                        job.id,
                        settings=app_settings,
                        mapping={"email": "email", "name": "name", "outlet": "outlet"},
                        lawful_basis=LawfulBasis.CONSENT,
                        beat_ids=[beat_id],
                        media_list_id=None,
                    )
                    s.commit()
                    job_id = job.id
                with app.app_context(), live_db.session() as s:
                    imports.start_import(s, job_id)
                    s.commit()  # enqueues after commit

                def finished() -> bool:
                    with live_db.session() as s:
                        found = s.get(ImportJob, job_id)
                        return found is not None and found.status in (
                            ImportStatus.SUCCEEDED,
                            ImportStatus.FAILED,
                        )

                _wait(finished)
                with live_db.session() as s:
                    done = s.get(ImportJob, job_id)
                    assert done is not None and done.status == ImportStatus.SUCCEEDED
                    assert (done.created_count, done.error_count) == (300, 1)
                    people = s.scalars(
                        select(Journalist).where(Journalist.email_normalized.like(f"%@{domain}"))
                    ).all()
                    assert len(people) == 300
                    assert all(
                        [sub.status for sub in p.subscriptions] == [SubscriptionStatus.CONFIRMED]
                        for p in people
                    )

                # A subscribe request: the worker renders and sends the double opt-in mail.
                client = app.test_client()
                token = csrf_token(client, "/subscribe")
                response = client.post(
                    "/subscribe",
                    data={"email": f"new@{domain}", "beats": [beat_id], "csrf_token": token},
                )
                assert response.status_code == 200
                [received] = sink.wait_for(1, timeout=90)

                def mailed() -> bool:
                    with live_db.session() as s:
                        request = s.scalars(
                            select(ConfirmationRequest).where(
                                ConfirmationRequest.address_hash == address_hash(f"new@{domain}")
                            )
                        ).one()
                        return request.mailed_at is not None

                _wait(mailed, timeout=30)  # recorded just after the SMTP server said 250
        assert received.rcpt_tos == [f"new@{domain}"]
        assert received.message["Subject"].startswith("Confirm your subscription")
        text = received.message.get_body(("plain",)).get_content()
        assert "http://localhost/subscribe/confirm/" in text
    finally:
        with live_db.session() as s:
            s.execute(delete(ImportJob).where(ImportJob.filename == f"w-{run}.csv"))
            s.execute(
                delete(ConfirmationRequest).where(
                    ConfirmationRequest.address_hash == address_hash(f"new@{domain}")
                )
            )
            s.execute(delete(Journalist).where(Journalist.email_normalized.like(f"%@{domain}")))
            s.execute(delete(Outlet).where(Outlet.name == f"Outlet {run}"))
            s.execute(delete(Beat).where(Beat.id == beat_id))
            s.commit()
