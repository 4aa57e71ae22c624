"""Enqueueing work for the workers by task name: code below the tasks never imports them.

As warehouse's ``request.task(...)``: a service names the task (the name its ``@shared_task``
registers, the one Celery beat uses too) and hands it to ``enqueue_after_commit``, so the task
reaches the broker only once the transaction that made its work has committed. Tasks stay the
top of their package (they import services, never the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from distributor.db import after_commit


@dataclass(frozen=True)
class TaskRef:
    """A task known by its registered name (``@shared_task(name=...)``)."""

    name: str


def enqueue(task: TaskRef, *args: Any) -> None:
    """Send ``task`` with JSON ``args`` to the broker now."""
    from celery import current_app

    registered = current_app.tasks.get(task.name)
    if registered is not None:
        # The registered task's own ``delay``: its options apply (and a test's stand-in does).
        registered.delay(*args)
    else:
        # This process never imported the task's module (a web process): the name is enough.
        current_app.send_task(task.name, args=list(args))


def enqueue_after_commit(session: Session, task: TaskRef, *args: Any) -> None:
    """Send ``task`` to the broker once the session's current transaction has committed."""
    after_commit(session, lambda: enqueue(task, *args))
