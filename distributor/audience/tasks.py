from __future__ import annotations

import smtplib

from celery import shared_task
from flask import current_app

from distributor.audience.consent import deliver_confirmation
from distributor.db import task_session

# Only connection trouble is worth retrying; an SMTP 5xx will not improve.
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)


@shared_task(
    name="audience.send_confirmation", autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=5
)
def send_confirmation(request_id: int) -> None:
    """Send the double opt-in mail of one confirmation request."""
    ext = current_app.extensions
    deliver_confirmation(
        ext["distributor.db"],
        request_id,
        settings=ext["distributor.settings"],
        renderer=ext["distributor.email_renderer"],
        transport=ext["distributor.mail_transport"],
    )


@shared_task(name="audience.run_import")
def run_import(job_id: int) -> None:
    """Import the rows of one previewed CSV import job, all or nothing."""
    from distributor.audience.imports import run_import_job

    ext = current_app.extensions
    run_import_job(
        ext["distributor.db"],
        job_id,
        settings=ext["distributor.settings"],
        relay=ext.get("distributor.relay_check"),
    )


@shared_task(name="audience.run_dry_run")
def run_dry_run(job_id: int) -> None:
    """Check every row of a large CSV import (the dry run), with progress."""
    from distributor.audience.imports import run_dry_run_job

    ext = current_app.extensions
    run_dry_run_job(
        ext["distributor.db"],
        job_id,
        settings=ext["distributor.settings"],
        relay=ext.get("distributor.relay_check"),
    )


@shared_task(name="audience.requeue_stalled")
def requeue_stalled() -> None:
    """Sweep: re-queue confirmation mails and imports whose broker message was lost."""
    from distributor.audience.consent import unsent_confirmations
    from distributor.audience.imports import stalled_dry_runs, stalled_imports

    with task_session() as session:
        confirmations = unsent_confirmations(session)
        imports = stalled_imports(session)
        dry_runs = stalled_dry_runs(session)
    for job_id in dry_runs:
        run_dry_run.delay(job_id)
    for request_id in confirmations:
        send_confirmation.delay(request_id)
    for job_id in imports:
        run_import.delay(job_id)
