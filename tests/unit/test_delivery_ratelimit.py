"""Global and per-domain sending limits, in process and shared through Redis."""

from __future__ import annotations

import pytest
import redis

from distributor.delivery.ratelimit import PREFIX, Limits, LocalRateLimiter, RedisRateLimiter
from tests.support.services import need, redis_available, redis_url

LIMITS = Limits(
    rate_per_second=100,
    domain_rate_per_second=10,
    domain_concurrency=2,
    domain_backoff_seconds=60,
    lease_seconds=30,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_limiter_caps_each_domain_and_refills_over_time() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(LIMITS, clock=clock)
    grant = limiter.acquire("batch-1", {"a.example": 25, "b.example": 3})
    assert grant.granted == {"a.example": 10, "b.example": 3}
    assert limiter.acquire("batch-1", {"a.example": 5}).granted == {"a.example": 0}
    clock.now += 0.5
    assert limiter.acquire("batch-1", {"a.example": 25}).granted == {"a.example": 5}


def test_local_limiter_caps_concurrency_per_domain_until_released() -> None:
    limiter = LocalRateLimiter(LIMITS, clock=Clock())
    assert limiter.acquire("one", {"a.example": 1}).granted["a.example"] == 1
    assert limiter.acquire("two", {"a.example": 1}).granted["a.example"] == 1
    assert limiter.acquire("three", {"a.example": 1}).granted["a.example"] == 0
    limiter.end_lease("one", ["a.example"])
    assert limiter.acquire("three", {"a.example": 1}).granted["a.example"] == 1


def test_a_throttling_domain_slows_only_that_domain() -> None:
    limiter = LocalRateLimiter(LIMITS, clock=Clock())
    limiter.back_off("slow.example")
    grant = limiter.acquire("b", {"slow.example": 5, "fast.example": 5})
    assert grant.granted == {"slow.example": 0, "fast.example": 5}
    assert grant.backoff_seconds == {"slow.example": 60}


def test_redis_limiter_is_shared_between_limiters() -> None:
    need(redis_available(), f"Redis is not reachable at {redis_url()}")
    client = redis.Redis.from_url(redis_url())
    for key in client.scan_iter(f"{PREFIX}:*"):
        client.delete(key)
    one, two = RedisRateLimiter(client, LIMITS), RedisRateLimiter(client, LIMITS)
    assert one.acquire("w1", {"a.example": 8}).granted == {"a.example": 8}
    # The second worker shares the bucket: only what is left of the 10 per second.
    assert two.acquire("w2", {"a.example": 8}).granted["a.example"] <= 3
    assert two.acquire("w3", {"b.example": 1}).granted == {"b.example": 1}
    # Two leases hold a.example; a third batch must wait until one is released.
    assert two.acquire("w4", {"a.example": 1}).granted == {"a.example": 0}
    one.end_lease("w1", ["a.example"])
    two.back_off("b.example")
    grant = one.acquire("w5", {"b.example": 1, "c.example": 1})
    assert grant.granted == {"b.example": 0, "c.example": 1}
    assert 0 < grant.backoff_seconds["b.example"] <= 60
    for key in client.scan_iter(f"{PREFIX}:*"):
        client.delete(key)


def test_the_shared_limiter_grants_what_the_local_one_grants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same rules in Redis and in process: the global cap cuts a batch's many domains."""
    need(redis_available(), f"Redis is not reachable at {redis_url()}")
    client = redis.Redis.from_url(redis_url())
    for key in client.scan_iter(f"{PREFIX}:*"):
        client.delete(key)
    limits = Limits(
        rate_per_second=7,
        domain_rate_per_second=3,
        domain_concurrency=2,
        domain_backoff_seconds=60,
        lease_seconds=30,
    )
    clock = Clock()
    monkeypatch.setattr("distributor.delivery.ratelimit.time.time", clock)
    local, shared = LocalRateLimiter(limits, clock=clock), RedisRateLimiter(client, limits)
    steps: list[tuple[float, str, dict[str, int]]] = [
        (0.0, "w1", {"a.example": 2, "b.example": 5, "c.example": 4}),
        (0.0, "w2", {"a.example": 1, "d.example": 1}),
        (0.0, "w3", {"a.example": 1}),  # a.example is held by two leases
        (0.5, "w1", {"b.example": 5, "e.example": 5}),
        (2.0, "w4", {f"d{i}.example": 1 for i in range(10)}),
    ]
    try:
        for advance, lease, wanted in steps:
            clock.now += advance
            assert shared.acquire(lease, wanted).granted == local.acquire(lease, wanted).granted
    finally:
        for key in client.scan_iter(f"{PREFIX}:*"):
            client.delete(key)
