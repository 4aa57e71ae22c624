from __future__ import annotations

from celery import shared_task

from distributor.db import task_session, utcnow
from distributor.reports.rollup import count_settled_sends


@shared_task(name="reports.count_settled_sends")
def count_settled() -> int:
    """Count the messages of sends that settled, per day, for the 30-day dashboard."""
    with task_session() as session:
        return count_settled_sends(session, now=utcnow())
