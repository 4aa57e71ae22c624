"""One rule for the suppression list: the send path's writer adds what ``suppress`` would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from distributor.audience import services
from distributor.audience.models import Suppression, SuppressionReason
from distributor.db import Database
from distributor.delivery.progress import ProgressWriter

ADDRESSES = ("Gone@Example.org", "listed@example.org")


@pytest.fixture()
def live_db(engine: Engine) -> Iterator[Database]:
    """Committed data (the writer has its own autocommit connection); removed afterwards."""
    db = Database(engine)
    yield db
    hashes = [services.address_hash(a) for a in ADDRESSES]
    with engine.begin() as conn:
        conn.execute(delete(Suppression).where(Suppression.address_hash.in_(hashes)))


def _entry(db: Database, address: str) -> Suppression | None:
    with db.session() as session:
        return session.scalar(
            select(Suppression).where(Suppression.address_hash == services.address_hash(address))
        )


def test_a_hard_bounce_on_the_send_path_is_the_row_suppress_makes(live_db: Database) -> None:
    writer = ProgressWriter(live_db.engine, claim_id=0)  # suppress needs no claim
    try:
        writer.suppress(ADDRESSES[0], SuppressionReason.HARD_BOUNCE, "rcpt 550 5.1.1 gone")
        with pytest.raises(ValueError, match=r"needs audience\.services\.suppress"):
            # A complaint also ends subscriptions: only the session-side rule can do that.
            writer.suppress(ADDRESSES[0], SuppressionReason.COMPLAINT, "")
    finally:
        writer.close()
    entry = _entry(live_db, ADDRESSES[0])
    assert entry is not None
    expected = services.suppression_row(
        ADDRESSES[0], SuppressionReason.HARD_BOUNCE, note="rcpt 550 5.1.1 gone"
    )
    assert {k: getattr(entry, k) for k in expected} == {
        **expected,
        "reason": SuppressionReason.HARD_BOUNCE,
    }
    assert entry.address == "gone@example.org" and entry.created_at is not None


def test_an_entry_already_there_is_kept_as_suppress_keeps_it(live_db: Database) -> None:
    with live_db.session() as session, session.begin():
        services.suppress(
            session, ADDRESSES[1], SuppressionReason.DO_NOT_CONTACT, note="legal asked"
        )
    writer = ProgressWriter(live_db.engine, claim_id=0)
    try:
        writer.suppress(ADDRESSES[1], SuppressionReason.HARD_BOUNCE, "rcpt 550 5.1.1")
    finally:
        writer.close()
    entry = _entry(live_db, ADDRESSES[1])
    assert entry is not None
    assert (entry.reason, entry.note) == (SuppressionReason.DO_NOT_CONTACT, "legal asked")
