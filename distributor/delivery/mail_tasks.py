"""Tasks for the release-mail side of delivery: staff test sends and the daily digest sweep."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import current_app

from distributor.accounts.models import User
from distributor.db import task_session, utcnow
from distributor.delivery import digest
from distributor.delivery.rendering import compile_release, staff_recipient
from distributor.errors import NotFound
from distributor.mail import outgoing
from distributor.mail.transport import MailTransport
from distributor.notifications.recording import run_recorded
from distributor.settings import current_settings


def _transport() -> MailTransport:
    transport: MailTransport = current_app.extensions["distributor.mail_transport"]
    return transport


@shared_task(name="delivery.send_release_test", bind=True)
def send_release_test(
    self: Any, release_id: int, user_id: int, staff_mail_id: int | None = None
) -> None:
    """Render the release exactly as the workers do and send it to one staff member."""
    settings = current_settings()

    def send() -> str:
        with task_session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("The colleague for this test send no longer exists")
            compiled = compile_release(session, release_id, settings)
            envelope_from, message_id, raw = compiled.message_for(
                staff_recipient(email=user.email, name=user.name, label="test")
            )
        outgoing.send(
            _transport(), outgoing.OutgoingMail(envelope_from, user.email, message_id, raw)
        )
        return compiled.subject

    run_recorded(self, staff_mail_id, send)


@shared_task(name="delivery.send_digests")
def send_digests() -> int:
    """Sweep: send today's digest to every journalist who has one due (once per day)."""
    return digest.sweep_digests(
        task_session, now=utcnow(), settings=current_settings(), transport=_transport()
    )
