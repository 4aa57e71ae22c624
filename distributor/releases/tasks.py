"""Release tasks: the periodic sweep that lifts embargoes (never a broker ETA)."""

from __future__ import annotations

from celery import shared_task

from distributor.db import task_session, utcnow
from distributor.logs import get_logger
from distributor.releases.workflow import publish_due_embargoes

log = get_logger("distributor.releases")


@shared_task(name="releases.lift_embargoes")
def lift_embargoes() -> int:
    """Publish every approved release whose embargo has passed; returns how many."""
    with task_session() as session:
        published = publish_due_embargoes(session, utcnow())
    if published:
        log.info("embargoes lifted", release_ids=published)
    return len(published)
