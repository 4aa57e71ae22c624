"""The tracking figures of /metrics come from the Redis buffer's lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

from distributor.health import metrics
from distributor.tracking.buffer import (
    DEAD_LETTER_KEY,
    PROCESSING_KEY,
    QUEUE_KEY,
    RawEvent,
    RedisEventBuffer,
)


class FakeRedis:
    """The few list commands the figures need, with redis-py's pipeline shape."""

    def __init__(self, lists: dict[str, list[bytes]]) -> None:
        self.lists = lists
        self.calls: list[Any] = []

    def register_script(self, _script: str) -> object:
        return object()

    def pipeline(self, transaction: bool = True) -> FakeRedis:
        self.calls = []
        return self

    def llen(self, key: str) -> None:
        self.calls.append(len(self.lists.get(key, [])))

    def lindex(self, key: str, index: int) -> None:
        items = self.lists.get(key, [])
        self.calls.append(items[index] if items else None)

    def execute(self) -> list[Any]:
        return self.calls


def _event(age_seconds: float, now: dt.datetime) -> bytes:
    event = RawEvent.new(kind="open", token="t" * 24, link_id=None, method="GET", user_agent="")
    at = (now - dt.timedelta(seconds=age_seconds)).timestamp()
    return RawEvent(**{**event.__dict__, "occurred_at": at}).dumps().encode()


def _figures(lists: dict[str, list[bytes]], now: dt.datetime) -> dict[str, float]:
    buffer = RedisEventBuffer(FakeRedis(lists))
    return {g.name: g.samples[0][1] for g in metrics._tracking(buffer, now)}


def test_buffer_length_counts_both_lists_and_lag_is_the_oldest_event() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    figures = _figures(
        {
            QUEUE_KEY: [_event(12, now), _event(3, now)],
            PROCESSING_KEY: [_event(40, now)],  # a flush is writing it: the oldest waiting
            DEAD_LETTER_KEY: [_event(900, now)],
        },
        now,
    )
    assert figures["tracking_buffer_events"] == 3
    assert figures["tracking_flush_lag_seconds"] == 40
    assert figures["tracking_refused_events"] == 1


def test_an_empty_buffer_has_no_lag() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    figures = _figures({}, now)
    assert figures["tracking_buffer_events"] == 0
    assert figures["tracking_flush_lag_seconds"] == 0
