"""The claim walks the queue index from where the worker left off and stops after a batch,
whatever the statistics say; "is anything pending?" reads the queue from its end.

Right after a freeze the planner's statistics of ``deliveries`` are stale (autovacuum has
not analyzed the new rows yet); left to itself it planned a bitmap scan and a sort of every
unclaimed row of the send for each claim: 409 ms instead of 10 ms for 1,000 rows of a
frozen million, under EXPLAIN ANALYZE. And a claim leaves its rows' entries in the queue
index until VACUUM, so a claim or a look-up that started at the front of the fresh rows
walked the entries of every row claimed before it.

The plans are those of the product's own statements, as PostgreSQL's ``auto_explain`` sends
them to this connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor.db import Database, utcnow
from distributor.delivery import ledger
from distributor.delivery.models import Delivery, DeliveryStatus
from tests.support.delivery_seed import running_send
from tests.support.services import need

pytestmark = pytest.mark.integration


@pytest.fixture()
def plans(live_db: Database) -> Iterator[tuple[Connection, list[str]]]:
    """A connection whose every statement's plan lands in the list."""
    need(live_db.engine.dialect.name == "postgresql", "the claim's plan is PostgreSQL's")
    seen: list[str] = []
    with live_db.engine.connect() as conn:
        try:
            conn.exec_driver_sql("LOAD 'auto_explain'")
        except Exception as exc:  # not a superuser, or contrib not installed
            need(False, f"auto_explain cannot be loaded here ({exc})")
        conn.rollback()
        raw = conn.connection.driver_connection
        raw.add_notice_handler(lambda diag: seen.append(diag.message_primary or ""))
        conn.exec_driver_sql("SET LOCAL auto_explain.log_min_duration = 0")
        conn.exec_driver_sql("SET LOCAL auto_explain.log_level = notice")
        # Costs that make any index walk look dear, as stale statistics can: a plan that
        # only follows the costs sorts the rows (or scans a bitmap) instead.
        conn.exec_driver_sql("SET LOCAL random_page_cost = 100000")
        yield conn, seen
        conn.rollback()


def _plans_of(seen: list[str], marker: str) -> list[str]:
    return [plan for plan in seen if marker in plan]


def test_the_claim_is_an_index_walk_with_no_sort(
    live_db: Database, plans: tuple[Connection, list[str]]
) -> None:
    conn, seen = plans
    send_id, _ = running_send(live_db, 400, domains=4)
    claim = ledger.claim_batch(conn, send_id=send_id, worker="plan", limit=100, lanes=4)
    assert claim is not None and len(claim.rows) == 100
    picks = _plans_of(seen, "FOR UPDATE SKIP LOCKED")
    assert len(picks) == 2, seen  # the due retries, then the fresh rows
    for plan in picks:
        assert "ix_deliveries_unclaimed" in plan, plan
        assert "Sort" not in plan and "Bitmap" not in plan, plan


def test_is_anything_pending_reads_the_queue_from_its_end(
    live_db: Database, plans: tuple[Connection, list[str]]
) -> None:
    conn, seen = plans
    send_id, _ = running_send(live_db, 300, domains=3)
    with Session(bind=conn) as session:
        assert ledger.has_pending(session, send_id)
        assert ledger.has_due(session, send_id, utcnow())
    lookups = _plans_of(seen, "LIMIT")
    backwards = [p for p in lookups if "Index Scan Backward using ix_deliveries_unclaimed" in p]
    assert len(backwards) == 2, lookups


def _claim_ids(db: Database, send_id: int, *, limit: int, after: int) -> tuple[list[int], int]:
    with db.engine.begin() as conn:
        claim = ledger.claim_batch(conn, send_id=send_id, worker="w", limit=limit, after=after)
        assert claim is not None
        return [r.id for r in claim.rows], claim.after


def test_a_claim_starts_after_the_hint_and_goes_back_below_it_only_when_short(
    live_db: Database,
) -> None:
    need(live_db.engine.dialect.name == "postgresql", "the hint is read by PostgreSQL's claim")
    send_id, _ = running_send(live_db, 30, domains=3)
    with live_db.session() as session:
        ids = sorted(session.scalars(select(Delivery.id).where(Delivery.send_id == send_id)))
    first, after = _claim_ids(live_db, send_id, limit=10, after=0)
    assert first == ids[:10] and after == ids[9]
    # A row of the first claim is put back (unsent, as a pause would): it lies below the hint.
    with live_db.engine.begin() as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id == ids[3])
            .values(status=DeliveryStatus.QUEUED, claim_id=None)
        )
    second, after = _claim_ids(live_db, send_id, limit=10, after=after)
    assert second == ids[10:20] and after == ids[19]
    # Fewer than asked after the hint: the rest comes from below it, the hint stays.
    third, after = _claim_ids(live_db, send_id, limit=15, after=after)
    assert third == sorted([ids[3], *ids[20:30]]) and after == ids[29]
    assert _claim_ids(live_db, send_id, limit=10, after=after) == ([], after)
