"""Media tasks: the sweep that hides assets whose rights have ended."""

from __future__ import annotations

from celery import shared_task

from distributor.db import task_session, utcnow
from distributor.media import rights


@shared_task(name="media.expire_rights")
def expire_rights() -> int:
    """Periodic: mark assets whose rights ended as expired (hidden, blocking sends)."""
    with task_session() as session:
        return len(rights.expire_due(session, utcnow()))
