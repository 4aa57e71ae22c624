"""Media tasks: the sweep that hides assets whose rights have ended and warns their owners."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from distributor.db import task_session, utcnow
from distributor.media import downloads, rights


@shared_task(name="media.expire_rights")
def expire_rights() -> int:
    """Periodic: mark assets whose rights ended as expired, remove files built from them and
    stale press kits, then mail the owners of assets whose rights end soon."""
    extensions = current_app.extensions
    with task_session() as session:
        expired = len(rights.expire_due(session, utcnow()))
    # After the commit above: what was built from assets whose rights ended (and stale
    # press kits, older revisions) leaves the storage.
    with task_session() as session:
        downloads.sweep_built_files(session, extensions["distributor.media_storage"], utcnow())
    rights.send_expiry_notices(
        task_session,
        settings=extensions["distributor.settings"],
        renderer=extensions["distributor.email_renderer"],
        transport=extensions["distributor.mail_transport"],
        now=utcnow,
    )
    return expired
