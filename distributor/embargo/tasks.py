"""Embargo tasks: one sweep that queues lift notes and sends queued notices."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from distributor.db import task_session, utcnow
from distributor.embargo import notices
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport
from distributor.settings import Settings


def _collaborators() -> tuple[Settings, EmailRenderer, MailTransport]:
    extensions = current_app.extensions
    return (
        extensions["distributor.settings"],
        extensions["distributor.email_renderer"],
        extensions["distributor.mail_transport"],
    )


@shared_task(name="embargo.send_notices")
def send_notices() -> int:
    """Send queued corrections, lift notes and new-browser links (each exactly once)."""
    settings, renderer, transport = _collaborators()
    return notices.send_queued(
        task_session, settings=settings, renderer=renderer, transport=transport, now=utcnow
    )


@shared_task(name="embargo.sweep")
def sweep() -> int:
    """Periodic: queue "embargo lifted" notes for releases that lifted, then send what waits."""
    with task_session() as session:
        notices.queue_lift_notes(session, utcnow())
    sent: int = send_notices()
    return sent
