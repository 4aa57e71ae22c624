"""Helpers for the bounce tests: the sample messages and deliveries they are about."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from tests.support import delivery_factories as f

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


def sample(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def delivery(
    session: Session,
    *,
    email: str,
    token: str,
    message_id: str | None = None,
    sent_at: dt.datetime | None = None,
    journalist: Journalist | None = None,
) -> Delivery:
    """A sent delivery of a fresh release to ``journalist`` (or a new one at ``email``)."""
    release = f.release(session, photo=False, contacts=False, attachments=False)
    journalist = journalist or f.journalist(session, email=email)
    d = f.send_with_delivery(session, release, journalist, status=DeliveryStatus.SENT)
    d.verp_token = token
    d.message_id = message_id
    d.sent_at = sent_at or utcnow() - dt.timedelta(hours=1)
    session.flush()
    return d
