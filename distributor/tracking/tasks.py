from __future__ import annotations

from celery import shared_task
from flask import Flask, current_app

from distributor.db import get_db
from distributor.tracking import services
from distributor.tracking.buffer import RawEvent
from distributor.tracking.views import event_buffer


def flush_events(app: Flask) -> tuple[int, int]:
    """Move buffered events into the database and classify what is new: (drained, classified)."""
    db = get_db()

    def write(batch: list[RawEvent]) -> None:
        session = db.session()
        try:
            services.store_events(session, batch)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    buffer = event_buffer(app)
    drained = buffer.drain(write) if buffer is not None else 0
    session = db.session()
    try:
        classified = services.classify_pending(session)
        session.commit()
    finally:
        session.close()
    return drained, classified


@shared_task(name="tracking.flush")
def flush() -> None:
    """Periodic sweep: drain the tracking buffer and apply the whole-message rules."""
    flush_events(current_app._get_current_object())  # type: ignore[attr-defined]
