"""The relay as a thing with its own state, against scripted loopback relays: Amazon SES's
"454 Throttling failure" after DATA and a connection-count limit's 421 at connect slow the relay
down for every batch, send each message exactly once, and charge no recipient an attempt."""

from __future__ import annotations

import dataclasses
import time

import pytest

from distributor.db import Database
from distributor.delivery.models import DeliveryStatus
from distributor.delivery.relaystate import (
    LocalRelayState,
    RedisRelayState,
    RelayLimits,
    RelayState,
    relay_key,
)
from distributor.delivery.sender import run_batch
from distributor.mail.outcomes import RelayTrouble
from distributor.mail.transport import parse_smtp_urls
from distributor.settings import Settings
from tests.support.delivery_seed import open_limiter, rows_by_email, running_send
from tests.support.faulty_smtp import FaultySMTPServer, Script

pytestmark = pytest.mark.integration


def drain(
    db: Database,
    settings: Settings,
    send_id: int,
    url: str,
    state: RelayState,
    *,
    total: int,
    deadline_seconds: float = 180.0,
) -> list[int]:
    """Run batches until every row is sent; the connections each batch was allowed."""
    relays = parse_smtp_urls(url)
    allowed: list[int] = []
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        result = run_batch(
            db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        statuses = [r.status for r in rows_by_email(db, send_id).values()]
        if statuses.count(DeliveryStatus.SENT) == total:
            return allowed
        if result.claimed:
            found = state.status([relay_key(relays[0])])
            allowed.append(found[0].connections if found else -1)
        else:
            time.sleep(min(2.0, max(0.2, result.retry_after)))
    raise AssertionError("the send did not finish in time")


def test_ses_throttling_after_data_slows_the_relay_and_charges_no_attempt(
    settings: Settings, live_db: Database
) -> None:
    settings = dataclasses.replace(settings, smtp_relay_recover_seconds=60)
    send_id, emails = running_send(live_db, 90, domains=6)
    state = LocalRelayState(RelayLimits.from_settings(settings))
    with FaultySMTPServer(Script(max_per_second=12)) as server:
        relays = parse_smtp_urls(server.url)
        key = relay_key(relays[0])
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        assert server.throttled > 0
        rows = rows_by_email(live_db, send_id)
        back = [r for r in rows.values() if r.status is DeliveryStatus.QUEUED]
        assert back, "the relay's refusal sent the batch's rows back to the queue"
        for row in back:
            # The reply that decided it, word for word; about the relay; no attempt charged.
            assert row.attempts == 0
            assert row.smtp_response.startswith(
                "dot 454 Throttling failure: Maximum sending rate exceeded."
            ), row.smtp_response
            assert "about the relay, not the recipient" in row.smtp_response
        assert not [r for r in rows.values() if r.status is DeliveryStatus.DEFERRED]
        (status,) = state.status([key])
        assert status.kind == RelayTrouble.RATE
        assert status.rate_per_second > 0
        drain(live_db, settings, send_id, server.url, state, total=90)
        received = server.counts()
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    # Exactly once each, and only the one accepted try counted as an attempt.
    assert received == {e: 1 for e in emails}
    assert {r.attempts for r in rows.values()} == {1}


def test_too_many_connections_at_connect_brings_the_connection_count_down(
    settings: Settings, live_db: Database
) -> None:
    settings = dataclasses.replace(
        settings, delivery_connections_per_batch=6, smtp_relay_recover_seconds=60
    )
    send_id, emails = running_send(live_db, 120, domains=12)
    state = LocalRelayState(RelayLimits.from_settings(settings))
    with FaultySMTPServer(Script(max_connections=2)) as server:
        relays = parse_smtp_urls(server.url)
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        assert server.turned_away > 0
        rows = rows_by_email(live_db, send_id)
        back = [r for r in rows.values() if r.status is DeliveryStatus.QUEUED]
        assert back
        assert all(r.attempts == 0 for r in back)
        assert all(
            r.smtp_response.startswith(
                "connect 421 4.7.0 faulty.test Error: too many connections from 127.0.0.1"
            )
            for r in back
        ), back[0].smtp_response
        allowed = drain(live_db, settings, send_id, server.url, state, total=120)
        received = server.counts()
    # The shared limit came down to what the relay takes (6 asked, 2 allowed by the relay).
    assert allowed and allowed[-1] <= 2
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    assert received == {e: 1 for e in emails}
    assert {r.attempts for r in rows.values()} == {1}


def test_redis_relay_state_decreases_shares_and_recovers_step_by_step(
    settings: Settings, broker: str
) -> None:
    import redis

    redis_client = redis.Redis.from_url(broker)
    limits = dataclasses.replace(
        RelayLimits.from_settings(settings),
        connections=8,
        rate_per_second=0,
        backoff_seconds=0.2,
        recover_seconds=0.1,
    )
    one, two = RedisRelayState(redis_client, limits), RedisRelayState(redis_client, limits)
    key = f"test-{time.time_ns()}:25"
    assert one.acquire("a", key, 6).connections == 6
    assert two.acquire("b", key, 6).connections == 2  # 8 shared by every worker
    pause = one.trouble(key, RelayTrouble.CONNECTIONS, "connect 421 too many connections", 0, 6)
    assert pause > 0
    assert two.acquire("c", key, 1).connections == 0  # paused for everyone
    one.end_lease("a", key, 6)
    two.end_lease("b", key, 2)
    time.sleep(pause + 0.05)
    allowance = two.acquire("d", key, 8)
    assert allowance.connections == allowance.allowed_connections == 4  # halved from 8 open
    two.end_lease("d", key, 4)
    steps = []
    for _ in range(6):
        time.sleep(0.12)
        two.good(key)
        steps.append(two.acquire("e", key, 8).allowed_connections)
        two.end_lease("e", key, 8)
    assert steps[:4] == [5, 6, 7, 8]  # one more connection a step, up to the limit
    assert one.status([key]) == []  # fully recovered: the state is gone


def test_without_redis_each_process_keeps_a_conservative_share(settings: Settings) -> None:
    import redis

    from distributor.delivery.relaystate import FallbackRelayState
    from tests.support.services import free_port

    limits = dataclasses.replace(
        RelayLimits.from_settings(settings), connections=16, fallback_connections=2
    )
    gone = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    state = FallbackRelayState(RedisRelayState(gone, limits), limits)
    key = "127.0.0.1:25"
    assert state.acquire("a", key, 8).connections == 2  # not 16: other processes share it
    assert state.acquire("b", key, 8).connections == 0
    pause = state.trouble(key, RelayTrouble.SESSION, "helo: TLS: certificate verify failed", 0, 2)
    assert pause > 0
    (status,) = state.status([key])
    assert status.reason == "helo: TLS: certificate verify failed"
