from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import current_app

from distributor.admin.services import send_test_email_now
from distributor.db import task_session
from distributor.notifications.recording import run_recorded


@shared_task(name="admin.send_test_email", bind=True)
def send_test_email(
    self: Any, to_address: str, requested_by_id: int, staff_mail_id: int | None = None
) -> None:
    """Render and send the admin test email; its staff-mail row says what became of it."""
    ext = current_app.extensions

    def send() -> str:
        with task_session() as session:
            return send_test_email_now(
                session,
                to_address=to_address,
                requested_by_id=requested_by_id,
                settings=ext["distributor.settings"],
                renderer=ext["distributor.email_renderer"],
                transport=ext["distributor.mail_transport"],
            )

    run_recorded(self, staff_mail_id, send)
