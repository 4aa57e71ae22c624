"""When a deferred message is tried again, and when it is given up (what a reply means is
``tests/unit/test_smtp_outcomes.py``)."""

from __future__ import annotations

import datetime as dt

from distributor.delivery.retry import plan_retry, retry_delay


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [retry_delay(n, 300, 4000) for n in (1, 2, 3, 4, 5, 50)] == [
        300,
        600,
        1200,
        2400,
        4000,
        4000,
    ]


def test_retries_stop_when_the_lifetime_is_over() -> None:
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    early = plan_retry(
        attempts=1,
        first_attempt_at=start,
        now=start,
        base_seconds=300,
        max_seconds=4000,
        lifetime_hours=24,
    )
    assert not early.is_expired
    assert early.next_attempt_at == start + dt.timedelta(minutes=5)
    late = plan_retry(
        attempts=20,
        first_attempt_at=start,
        now=start + dt.timedelta(hours=23, minutes=30),
        base_seconds=300,
        max_seconds=4000,
        lifetime_hours=24,
    )
    assert late.is_expired
    assert late.next_attempt_at is None
