from __future__ import annotations

import smtplib

from celery import shared_task
from flask import current_app

from distributor.admin.services import send_test_email_now
from distributor.db import task_session

# Only connection trouble is worth retrying; an SMTP 5xx will not improve.
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)


@shared_task(
    name="admin.send_test_email", autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=5
)
def send_test_email(to_address: str, requested_by_id: int) -> None:
    """Render and send the admin test email."""
    ext = current_app.extensions
    with task_session() as session:
        send_test_email_now(
            session,
            to_address=to_address,
            requested_by_id=requested_by_id,
            settings=ext["distributor.settings"],
            renderer=ext["distributor.email_renderer"],
            transport=ext["distributor.mail_transport"],
        )
