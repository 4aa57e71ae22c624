"""The ledger: state machine, atomic claims, and settling rows a dead worker left behind."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.db import Database, utcnow
from distributor.delivery import ledger
from distributor.delivery.ledger import claim_batch, move_delivery
from distributor.delivery.models import Delivery, DeliveryClaim, DeliveryStatus, Send, SendStatus
from distributor.delivery.progress import ProgressWriter
from distributor.errors import IllegalTransition
from distributor.releases.models import Release
from tests.support import delivery_factories as f


def _send(session: Session, n: int) -> tuple[Send, list[Delivery]]:
    release = f.release(session, photo=False, attachments=False, contacts=False)
    send = Send(release_id=release.id, status=SendStatus.RUNNING)
    session.add(send)
    session.flush()
    rows = [
        f.send_with_delivery(session, release, f.journalist(session, name=f"J{i}"))
        for i in range(n)
    ]
    return send, rows


def _claim(session: Session, send: Send, worker: str, *, age_seconds: float) -> DeliveryClaim:
    """A claim whose last heartbeat was ``age_seconds`` ago."""
    beat = utcnow() - dt.timedelta(seconds=age_seconds)
    claim = DeliveryClaim(send_id=send.id, worker=worker, claimed_at=beat, heartbeat_at=beat)
    session.add(claim)
    session.flush()
    return claim


def test_illegal_moves_raise() -> None:
    row = Delivery(status=DeliveryStatus.SENT)
    with pytest.raises(IllegalTransition):
        move_delivery(row, DeliveryStatus.QUEUED)
    row = Delivery(status=DeliveryStatus.QUEUED)
    move_delivery(row, DeliveryStatus.SENDING)
    move_delivery(row, DeliveryStatus.DEFERRED)
    with pytest.raises(IllegalTransition):
        move_delivery(row, DeliveryStatus.SENT)


def test_two_workers_claim_disjoint_rows(live_db: Database) -> None:
    with live_db.session() as session, session.begin():
        send, _ = _send(session, 30)
        send_id = send.id
    first, second = live_db.session(), live_db.session()
    try:
        first.begin()
        second.begin()
        # The first claim holds its row locks (uncommitted) while the second one runs:
        # on PostgreSQL SKIP LOCKED hands the second worker other rows instead of waiting.
        a = claim_batch(first.connection(), send_id=send_id, worker="a", limit=20)
        if live_db.engine.dialect.name != "postgresql":
            first.commit()  # SQLite has one writer: the second claim runs after the first
        b = claim_batch(second.connection(), send_id=send_id, worker="b", limit=20)
        first.commit() if first.in_transaction() else None
        second.commit()
    finally:
        first.close()
        second.close()
    assert a is not None and b is not None and a.id != b.id
    ids_a, ids_b = {r.id for r in a.rows}, {r.id for r in b.rows}
    assert len(ids_a) == 20 and len(ids_b) == 10
    assert not ids_a & ids_b
    assert all(r.name.startswith("J") and r.email for r in a.rows)
    with live_db.session() as session:
        owners = dict(
            session.execute(
                select(Delivery.id, Delivery.claim_id).where(Delivery.send_id == send_id)
            ).all()
        )
    assert {owners[i] for i in ids_a} == {a.id} and {owners[i] for i in ids_b} == {b.id}


def test_a_paused_send_yields_no_claims(session: Session) -> None:
    send, _ = _send(session, 3)
    send.status = SendStatus.PAUSED
    session.flush()
    assert claim_batch(session.connection(), send_id=send.id, worker="w", limit=10) is None


def test_rows_due_later_are_not_claimed(session: Session) -> None:
    send, rows = _send(session, 3)
    rows[0].next_attempt_at = utcnow() + dt.timedelta(minutes=5)
    session.flush()
    claimed = claim_batch(session.connection(), send_id=send.id, worker="w", limit=10)
    assert claimed is not None
    assert {r.id for r in claimed.rows} == {rows[1].id, rows[2].id}


def test_recovery_requeues_unsent_rows_and_marks_only_the_in_flight_one_in_doubt(
    session: Session,
) -> None:
    send, rows = _send(session, 8)
    # Worker "w1" stopped beating after recording rows 0..1 (row 2 next on its connection,
    # 3..4 not reached). Worker "w2" stopped with rows 5..6. Row 7 belongs to a live worker.
    w1 = _claim(session, send, "w1", age_seconds=3600)
    w2 = _claim(session, send, "w2", age_seconds=60)
    live = _claim(session, send, "live", age_seconds=2)
    for i, row in enumerate(rows):
        row.claim_id = w1.id if i < 5 else (w2.id if i < 7 else live.id)
        row.claim_lane = 0
        row.status = DeliveryStatus.SENT if i < 2 else DeliveryStatus.SENDING
    session.flush()
    result = ledger.recover_stale_claims(session, stale_seconds=20)
    assert (result.claims, result.requeued, result.in_doubt) == (2, 3, 2)
    statuses = [session.scalar(select(Delivery.status).where(Delivery.id == r.id)) for r in rows]
    assert statuses == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.IN_DOUBT,
        DeliveryStatus.QUEUED,
        DeliveryStatus.QUEUED,
        DeliveryStatus.IN_DOUBT,
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENDING,
    ]
    session.expire_all()
    assert session.get(DeliveryClaim, w1.id).recovered_at is not None
    assert session.get(DeliveryClaim, live.id).recovered_at is None
    # A second sweep finds nothing more to do.
    assert ledger.recover_stale_claims(session, stale_seconds=20).claims == 0


def test_due_deferred_rows_go_back_to_the_queue(session: Session) -> None:
    _send_row, rows = _send(session, 2)
    rows[0].status = DeliveryStatus.DEFERRED
    rows[0].next_attempt_at = utcnow() - dt.timedelta(seconds=1)
    rows[1].status = DeliveryStatus.DEFERRED
    rows[1].next_attempt_at = utcnow() + dt.timedelta(minutes=10)
    session.flush()
    assert ledger.promote_due_deferred(session, utcnow()) == 1
    session.expire_all()
    assert [session.get(Delivery, r.id).status for r in rows] == [
        DeliveryStatus.QUEUED,
        DeliveryStatus.DEFERRED,
    ]


def test_progress_writes_are_fenced_by_the_claim(live_db: Database) -> None:
    with live_db.session() as session, session.begin():
        send, rows = _send(session, 2)
        send_id, ids = send.id, [r.id for r in rows]
    with live_db.session() as session, session.begin():
        claimed = claim_batch(session.connection(), send_id=send_id, worker="me", limit=5)
    assert claimed is not None and len(claimed.rows) == 2
    mine = ProgressWriter(live_db.engine, claimed.id)
    stranger = ProgressWriter(live_db.engine, claimed.id + 1000)
    try:
        assert mine.is_claimed(ids[0]) and not stranger.is_claimed(ids[0])
        assert not stranger.record_accepted(ids[0], "<x@y>", "2.0.0 Ok")
        assert mine.record_accepted(ids[0], "<m0@y>", "2.0.0 Ok")
        assert not mine.record_accepted(ids[0], "<m0@y>", "2.0.0 Ok")  # once only
        assert not mine.is_claimed(ids[0])  # sent: no longer ours to send
        mine.record(
            ids[1],
            DeliveryStatus.DEFERRED,
            code=451,
            response="4.3.0 later",
            next_attempt_at=utcnow() + dt.timedelta(minutes=5),
        )
    finally:
        mine.close()
        stranger.close()
    with live_db.session() as session:
        first, second = (session.get(Delivery, i) for i in ids)
        assert first is not None and second is not None
        assert (first.status, first.message_id, first.attempts) == (
            DeliveryStatus.SENT,
            "<m0@y>",
            1,
        )
        assert first.sent_at is not None
        assert (second.status, second.smtp_code, second.attempts) == (
            DeliveryStatus.DEFERRED,
            451,
            1,
        )


def _journalist_at(session: Session, domain: str, i: int) -> Journalist:
    return f.journalist(session, email=f"reporter{i}@{domain}")


def test_a_claim_stores_each_rows_lane_from_its_domain(live_db: Database) -> None:
    domains = [f"outlet{i}.example" for i in range(12)]
    with live_db.session() as session, session.begin():
        release = f.release(session, photo=False, attachments=False, contacts=False)
        for i, domain in enumerate(domains * 2):
            f.send_with_delivery(session, release, _journalist_at(session, domain, i))
        send_id = session.scalar(select(Send.id).where(Send.release_id == release.id))
        assert send_id is not None
    with live_db.session() as session, session.begin():
        claim = claim_batch(session.connection(), send_id=send_id, worker="w", limit=100, lanes=5)
    assert claim is not None and len(claim.rows) == 24
    claimed = claim.rows
    for row in claimed:
        assert row.lane == ledger.lane_of(row.domain, 5)  # SQL and Python agree
    with live_db.session() as session:
        stored = dict(session.execute(select(Delivery.id, Delivery.claim_lane)).all())
    assert {stored[r.id] for r in claimed} == {ledger.lane_of(d, 5) for d in domains}
    assert len({stored[r.id] for r in claimed}) > 1


def test_recovery_marks_one_row_in_doubt_per_lane_of_a_dead_claim(session: Session) -> None:
    send, rows = _send(session, 9)
    dead = _claim(session, send, "dead", age_seconds=3600)
    # One dead batch with three lanes: lane 0 sent rows 0-1 and had row 2 in flight; lane 1
    # had row 4 in flight (row 3 was refused), row 5 not reached; lane 2 finished (rows 6-8).
    lanes = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    final = {
        0: DeliveryStatus.SENT,
        1: DeliveryStatus.SENT,
        3: DeliveryStatus.FAILED,
        6: DeliveryStatus.SENT,
        7: DeliveryStatus.SENT,
        8: DeliveryStatus.SENT,
    }
    for i, row in enumerate(rows):
        row.claim_id, row.claim_lane = dead.id, lanes[i]
        row.status = final.get(i, DeliveryStatus.SENDING)
    session.flush()
    result = ledger.recover_stale_claims(session, stale_seconds=20)
    assert (result.in_doubt, result.requeued) == (2, 1)
    session.expire_all()
    statuses = [session.get(Delivery, r.id).status for r in rows]
    assert (
        statuses[2] is DeliveryStatus.IN_DOUBT
        and statuses[4] is DeliveryStatus.IN_DOUBT
        and statuses[5] is DeliveryStatus.QUEUED
    )
    doubted = session.get(Delivery, rows[2].id)
    assert doubted is not None and "final dot may have been written" in doubted.smtp_response


def test_acceptances_commit_in_the_background_while_other_writes_wait_their_turn(
    live_db: Database,
) -> None:
    with live_db.session() as session, session.begin():
        send, rows = _send(session, 5)
        send_id, ids = send.id, [r.id for r in rows]
    with live_db.session() as session, session.begin():
        claim = claim_batch(session.connection(), send_id=send_id, worker="me", limit=4, lanes=2)
    assert claim is not None and len(claim.rows) == 4
    c = [r.id for r in claim.rows]  # sorted by id
    mine = ProgressWriter(live_db.engine, claim.id)
    awkward = 'queued as "A\\B"\x00 é'  # quotes, a backslash, a NUL and non-ASCII
    unclaimed = next(i for i in ids if i not in c)
    try:
        mine.submit_accepted([(c[0], "<a@x>", awkward), (unclaimed, "<u@x>", "Ok")])
        # Every other write finishes the submission first, and its result is kept.
        assert mine.send_status(send_id) == "running"
        assert mine.heartbeat()
        mine.touch_send(send_id)
        assert mine.take_confirmed(wait=False) == {c[0]}  # not the row we never claimed
        assert mine.take_confirmed(wait=True) is None  # nothing in flight any more
        mine.submit_accepted([(c[1], "<b@x>", "Ok")])
        assert mine.record(c[2], DeliveryStatus.FAILED, code=550, response="5.1.1 no such user")
        assert mine.take_confirmed(wait=True) == {c[1]}
        mine.submit_accepted([(i, f"<{i}@x>", "Ok") for i in c[2:]])
        confirmed = None
        while confirmed is None:
            confirmed = mine.take_confirmed(wait=False)
        assert confirmed == {c[3]}  # c[2] was refused a moment ago
    finally:
        mine.close()
    with live_db.session() as session:
        row = session.get(Delivery, c[0])
        assert row is not None and row.status is DeliveryStatus.SENT and row.message_id == "<a@x>"
        assert row.smtp_response == 'queued as "A\\B" é'


def test_a_claim_with_a_row_still_sending_is_not_ended(live_db: Database) -> None:
    """A batch that lost track of a row must leave its claim to recovery."""
    with live_db.session() as session, session.begin():
        send, _ = _send(session, 2)
        send_id = send.id
    with live_db.session() as session, session.begin():
        claim = claim_batch(session.connection(), send_id=send_id, worker="me", limit=5)
    assert claim is not None
    writer = ProgressWriter(live_db.engine, claim.id)
    try:
        assert writer.record_accepted(claim.rows[0].id, "<a@x>", "2.0.0 Ok")
        assert not writer.end_claim(send_id)  # rows[1] is still sending
        assert (
            writer.put_back([claim.rows[1].id], status=DeliveryStatus.QUEUED, next_attempt_at=None)
            == 1
        )
        assert writer.end_claim(send_id)
        assert writer.heartbeat()  # ended, not recovered: still ours to touch
    finally:
        writer.close()
    with live_db.session() as session:
        stored = session.get(DeliveryClaim, claim.id)
        assert stored is not None and stored.ended_at is not None and stored.recovered_at is None


def test_a_sends_rows_go_with_the_send_and_with_its_release(session: Session) -> None:
    """No foreign key ties a row to its send (migration 0028): a trigger deletes them."""
    kept, kept_rows = _send(session, 2)
    gone, _ = _send(session, 3)
    session.execute(delete(Send).where(Send.id == gone.id))
    other, _ = _send(session, 2)
    session.execute(delete(Release).where(Release.id == other.release_id))  # cascades to the send
    session.expunge_all()
    left = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    assert left == [r.id for r in kept_rows] and kept.id is not None


def test_a_deleted_journalists_rows_keep_the_history_without_the_id(session: Session) -> None:
    """No foreign key on ``journalist_id`` (migration 0029): a trigger clears the id."""
    _, rows = _send(session, 3)
    session.execute(delete(Journalist).where(Journalist.id == rows[1].journalist_id))
    session.expunge_all()
    left = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [d.id for d in left] == [r.id for r in rows]
    assert [d.journalist_id is None for d in left] == [False, True, False]
