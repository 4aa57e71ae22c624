"""Media tasks: the sweep that hides assets whose rights have ended and warns their owners."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from distributor.db import task_session, utcnow
from distributor.media import rights


@shared_task(name="media.expire_rights")
def expire_rights() -> int:
    """Periodic: mark assets whose rights ended as expired, then mail owners of those ending."""
    with task_session() as session:
        expired = len(rights.expire_due(session, utcnow()))
    extensions = current_app.extensions
    rights.send_expiry_notices(
        task_session,
        settings=extensions["distributor.settings"],
        renderer=extensions["distributor.email_renderer"],
        transport=extensions["distributor.mail_transport"],
        now=utcnow,
    )
    return expired
