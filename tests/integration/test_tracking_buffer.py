"""The Redis buffer loses nothing that was acknowledged, even when a flush dies midway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.db import Database, utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.reports.sample import HUMAN_UA, seed_sent_release
from distributor.settings import Settings
from distributor.tracking.buffer import PROCESSING_KEY, QUEUE_KEY, RawEvent, RedisEventBuffer
from distributor.tracking.services import store_events
from distributor.tracking.tasks import flush_events
from tests.support.services import need, redis_available, redis_url
from tests.support.tracking import stored_events


@pytest.fixture()
def buffer() -> Iterator[RedisEventBuffer]:
    need(redis_available(), f"Redis is not reachable at {redis_url()}")
    buf = RedisEventBuffer(redis.Redis.from_url(redis_url()))
    buf.client.delete(QUEUE_KEY, PROCESSING_KEY)
    yield buf
    buf.client.delete(QUEUE_KEY, PROCESSING_KEY)


def test_a_flush_that_dies_is_replayed_without_loss_or_duplicates(
    buffer: RedisEventBuffer, session: Session
) -> None:
    release = seed_sent_release(session, recipients=5, prefix="buf")
    deliveries = list(session.scalars(select(Delivery).where(Delivery.release_id == release.id)))
    for d in deliveries:
        d.status, d.sent_at = DeliveryStatus.SENT, utcnow() - dt.timedelta(hours=1)
    session.flush()
    baseline = stored_events(session, release.id)
    pushed = [
        RawEvent.new(
            kind="open", token=d.verp_token, link_id=None, method="GET", user_agent=HUMAN_UA
        )
        for d in deliveries
        for _ in range(4)
    ]
    for event in pushed:
        buffer.push(event)
    assert buffer.pending() == len(pushed)

    calls = {"n": 0}

    def crashing_write(batch: list[RawEvent]) -> None:
        store_events(session, batch)  # written, then the process "dies" before Redis is told
        session.flush()
        calls["n"] += 1
        raise RuntimeError("flusher killed")

    with pytest.raises(RuntimeError):
        buffer.drain(crashing_write, batch_size=7)
    assert calls["n"] == 1
    assert buffer.client.llen(PROCESSING_KEY) == 7  # the claimed batch waits for a replay

    def write(batch: list[RawEvent]) -> None:
        store_events(session, batch)
        session.flush()

    drained = buffer.drain(write, batch_size=7)
    assert drained == len(pushed)  # the 7 replayed plus the 13 never claimed
    assert buffer.pending() == 0
    assert stored_events(session, release.id) - baseline == len(pushed)


def test_only_one_flusher_at_a_time(buffer: RedisEventBuffer) -> None:
    buffer.client.set("distributor:tracking:flush-lock", "someone-else", ex=30)
    try:
        buffer.push(RawEvent.new(kind="open", token="t", link_id=None, method="GET", user_agent=""))
        assert buffer.drain(lambda batch: None) == 0
        assert buffer.pending() == 1
    finally:
        buffer.client.delete("distributor:tracking:flush-lock")


def test_events_answered_over_http_reach_the_database_through_redis_and_the_flush(
    buffer: RedisEventBuffer, settings: Settings, db: Database, session: Session
) -> None:
    app = create_app(Settings(**{**settings.__dict__, "redis_url": redis_url()}), db=db)
    release = seed_sent_release(session, recipients=3, prefix="http")
    delivery = session.scalars(select(Delivery).where(Delivery.release_id == release.id)).first()
    assert delivery is not None
    delivery.status, delivery.sent_at = DeliveryStatus.SENT, utcnow() - dt.timedelta(hours=1)
    session.commit()
    baseline = stored_events(session, release.id)
    client = app.test_client()
    for _ in range(5):
        response = client.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
        assert response.status_code == 200
    assert buffer.pending() == 5  # answered, kept in Redis, not yet in the database
    assert stored_events(session, release.id) == baseline

    with app.app_context():
        drained, _ = flush_events(app)
    assert drained == 5 and buffer.pending() == 0
    session.expire_all()
    assert stored_events(session, release.id) - baseline == 5


def test_an_event_the_database_refuses_is_set_aside_and_the_rest_go_through(
    buffer: RedisEventBuffer,
) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from distributor.tracking.buffer import DEAD_LETTER_KEY

    buffer.client.delete(DEAD_LETTER_KEY)
    events = [
        RawEvent.new(kind="open", token=f"tok{i}", link_id=None, method="GET", user_agent="x")
        for i in range(9)
    ]
    for event in events:
        buffer.push(event)
    stored: list[str] = []
    down = {"now": True}

    def write(batch: list[RawEvent]) -> None:
        if down["now"]:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        if any(e.token == "tok6" for e in batch):
            raise IntegrityError("INSERT", {}, Exception("violates a foreign key"))
        stored.extend(e.token for e in batch)

    # An outage refuses everything: nothing is set aside, the batch waits for the next flush.
    with pytest.raises(OperationalError):
        buffer.drain(write)
    assert stored == [] and buffer.pending() == 9 and buffer.refused() == []
    down["now"] = False
    assert buffer.drain(write) == 9
    assert sorted(stored) == sorted(f"tok{i}" for i in range(9) if i != 6)
    assert [e.token for e in buffer.refused()] == ["tok6"]
    assert buffer.pending() == 0
    buffer.client.delete(DEAD_LETTER_KEY)
