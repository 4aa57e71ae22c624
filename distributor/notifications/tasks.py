"""Workflow notifications: rendered and sent by a worker, the outcome recorded."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from distributor.db import task_session
from distributor.notifications.recording import run_recorded


@shared_task(name="notifications.send_notification", bind=True)
def send_notification(self: Any, staff_mail_id: int) -> None:
    """Render and send one workflow notification; its staff-mail row records the outcome."""
    from flask import current_app

    from distributor.mail import outgoing
    from distributor.notifications.compose import build_notification

    ext = current_app.extensions
    settings = ext["distributor.settings"]

    def send() -> str:
        with task_session() as session:
            note = build_notification(
                session,
                staff_mail_id,
                settings=settings,
                renderer=ext["distributor.email_renderer"],
            )
        outgoing.send(ext["distributor.mail_transport"], note.mail)
        return note.subject

    run_recorded(self, staff_mail_id, send)
