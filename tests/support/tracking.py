"""Reading back what the tracking pipeline stored, for tests and the tracking benchmark."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.tracking.models import TrackingEvent


def stored_events(session: Session, release_id: int) -> int:
    """How many tracking events of ``release_id`` are in the database."""
    found = session.scalar(
        select(func.count())
        .select_from(TrackingEvent)
        .where(TrackingEvent.release_id == release_id)
    )
    return int(found or 0)
