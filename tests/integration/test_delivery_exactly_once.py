"""Exactly once under faults, in this process, with explicit ordering where a race is meant.

Recovery against a live worker (two database connections, each step forced in turn), a worker
whose clock is two minutes behind, a relay that refuses our envelope sender, relay trouble,
Redis and the database going away mid-batch. Each checks the ledger against an SMTP sink.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Mapping

import pytest
from psycopg.pq.abc import PGconn, PGresult
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection

from distributor.audience.models import Suppression
from distributor.db import Database, utcnow
from distributor.delivery import ledger
from distributor.delivery.ledger import claim_batch
from distributor.delivery.models import Delivery, DeliveryClaim, DeliveryStatus, Send, SendStatus
from distributor.delivery.progress import ACCEPT_MANY_SQL, ProgressWriter
from distributor.delivery.ratelimit import Grant, Limits, LocalRateLimiter
from distributor.delivery.sender import run_batch
from distributor.mail.transport import parse_smtp_urls
from distributor.settings import Settings
from tests.support.delivery_seed import (
    open_limiter,
    rows_by_email,
    running_send,
)
from tests.support.faulty_smtp import FaultySMTPServer, Script

pytestmark = pytest.mark.integration


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL: row locks between two connections")


def _claim_three(db: Database) -> tuple[int, list[int]]:
    """One claim holding three rows of one lane, its heartbeat stopped an hour ago."""
    send_id, _ = running_send(db, 3, domains=1)
    with db.session() as session, session.begin():
        claim = claim_batch(session.connection(), send_id=send_id, worker="live", limit=3)
        assert claim is not None and len(claim.rows) == 3
        session.execute(
            update(DeliveryClaim)
            .where(DeliveryClaim.id == claim.id)
            .values(heartbeat_at=func.now() - dt.timedelta(hours=1))
        )
    return claim.id, [r.id for r in claim.rows]


def _status(db: Database, ids: list[int]) -> list[DeliveryStatus]:
    with db.session() as session:
        found = dict(session.execute(select(Delivery.id, Delivery.status)).all())
    return [found[i] for i in ids]


def _accept_in_open_transaction(
    engine: Engine, claim_id: int, row_id: int
) -> tuple[PoolProxiedConnection, PGconn, PGresult]:
    """The worker's acceptance statement, run but not committed: it holds the row's lock."""
    raw = engine.raw_connection()
    conn = raw.driver_connection
    conn.autocommit = True
    pq: PGconn = conn.pgconn
    pq.exec_(b"BEGIN")
    result = pq.exec_params(
        ACCEPT_MANY_SQL.encode(),
        [f"{{{row_id}}}".encode(), b'{"<m@x>"}', b'{"2.0.0 Ok"}', str(claim_id).encode()],
    )
    return raw, pq, result


def _wait_until_blocked(engine: Engine, pid: int) -> None:
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).scalar()
            if waiting == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError("the second connection never waited for the first one's lock")


def test_an_acceptance_committing_during_recovery_leaves_the_lane_its_in_doubt_row(
    live_db: Database,
) -> None:
    """The issue's race: the live worker's acceptance of the lane's first row commits while
    recovery is deciding. Recovery must see it and make the NEXT row in doubt (the worker,
    its commit confirmed, sends that row's dot), never requeue it."""
    _postgres_only(live_db)
    claim_id, ids = _claim_three(live_db)
    raw, pq, accepted = _accept_in_open_transaction(live_db.engine, claim_id, ids[0])
    assert accepted.ntuples == 1
    outcome: list[ledger.Recovery] = []
    pids: list[int] = []

    def sweep() -> None:
        with live_db.session() as session, session.begin():
            pids.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            outcome.append(ledger.recover_stale_claims(session, stale_seconds=20))

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        while not pids:
            time.sleep(0.01)
        _wait_until_blocked(live_db.engine, pids[0])  # recovery waits for the worker's row
        pq.exec_(b"COMMIT")
    finally:
        sweeper.join(10)
        raw.invalidate()  # autocommit: never back to the pool
        raw.close()
    assert outcome and (outcome[0].in_doubt, outcome[0].requeued) == (1, 1)
    assert _status(live_db, ids) == [
        DeliveryStatus.SENT,
        DeliveryStatus.IN_DOUBT,
        DeliveryStatus.QUEUED,
    ]
    # The worker, fenced out, sends that one in-doubt dot and gets a 250: its write fails, it
    # stops, and it records what it knows about that row.
    writer = ProgressWriter(live_db.engine, claim_id)
    try:
        assert not writer.record_accepted(ids[1], "<m1@x>", "2.0.0 Ok")
        assert not writer.heartbeat()
        assert not writer.is_claimed(ids[2])
        assert writer.settle_late(
            ids[1], DeliveryStatus.SENT, response="dot 250 recorded late", message_id="<m1@x>"
        )
    finally:
        writer.close()
    assert _status(live_db, ids) == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.QUEUED,
    ]


def test_an_acceptance_after_recovery_took_the_claim_writes_nothing(live_db: Database) -> None:
    """The other order: recovery locked the rows first; the acceptance waits, then finds them
    gone and the worker stops (its 250 is then recorded against the in-doubt row)."""
    _postgres_only(live_db)
    claim_id, ids = _claim_three(live_db)
    session = live_db.session()
    session.begin()
    recovery = ledger.recover_stale_claims(session, stale_seconds=20)
    assert (recovery.in_doubt, recovery.requeued) == (1, 2)
    pid = int(session.scalar(text("SELECT pg_backend_pid()")) or 0)
    assert pid
    results: list[int] = []

    def accept() -> None:
        writer = ProgressWriter(live_db.engine, claim_id)
        try:
            results.append(len(writer.record_accepted_many([(ids[0], "<m@x>", "2.0.0 Ok")])))
        finally:
            writer.close()

    worker = threading.Thread(target=accept)
    worker.start()
    time.sleep(0.3)  # the acceptance is now waiting for the row recovery holds
    session.commit()
    session.close()
    worker.join(10)
    assert results == [0]
    assert _status(live_db, ids) == [
        DeliveryStatus.IN_DOUBT,
        DeliveryStatus.QUEUED,
        DeliveryStatus.QUEUED,
    ]


def test_a_worker_whose_clock_is_two_minutes_behind_is_not_taken_for_dead(
    settings: Settings, live_db: Database
) -> None:
    """Claims and heartbeats carry the database's clock: the worker's clock cannot make its
    live claim look stale to a sweeper running all the while."""
    quick = dataclasses.replace(
        settings, delivery_claim_timeout_seconds=30, delivery_connections_per_batch=4
    )
    send_id, emails = running_send(live_db, 300, domains=8)
    recovered: list[ledger.Recovery] = []
    done = threading.Event()

    def sweeper() -> None:
        while not done.is_set():
            with live_db.session() as session, session.begin():
                recovered.append(ledger.recover_stale_claims(session, stale_seconds=30))
            time.sleep(0.05)

    sweeping = threading.Thread(target=sweeper)
    with FaultySMTPServer(Script(reply_delay=0.002)) as server:
        sweeping.start()
        try:
            result = run_batch(
                live_db,
                quick,
                send_id,
                limiter=open_limiter(),
                relays=parse_smtp_urls(server.url),
                clock=lambda: utcnow() - dt.timedelta(minutes=2),
            )
        finally:
            done.set()
            sweeping.join(10)
        counts = server.counts()
    assert len(recovered) > 3 and sum(r.claims for r in recovered) == 0
    assert result.sent == 300
    rows = rows_by_email(live_db, send_id)
    assert all(rows[e].status is DeliveryStatus.SENT and counts[e] == 1 for e in emails)


def test_a_relay_refusing_our_envelope_sender_pauses_the_send_and_blames_nobody(
    settings: Settings, live_db: Database
) -> None:
    send_id, _ = running_send(live_db, 40, domains=4)
    with FaultySMTPServer(Script(refuse_sender=True)) as server:
        result = run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
        )
        assert server.total == 0
    assert not result.is_send_running
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.QUEUED}  # pending, not failed
    assert all(r.attempts == 0 for r in rows.values())  # nobody charged an attempt
    with live_db.session() as session:
        assert session.scalar(select(func.count(Suppression.id))) == 0  # nobody suppressed
        send = session.get(Send, send_id)
        assert send is not None and send.status is SendStatus.PAUSED
        assert "mail 550 5.1.8" in send.pause_reason


def test_relay_trouble_requeues_without_charging_an_attempt(
    settings: Settings, live_db: Database
) -> None:
    send_id, emails = running_send(live_db, 10, domains=1)
    closing = emails[3]
    with FaultySMTPServer(Script(throttle={closing})) as server:
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
        )
        counts = server.counts()
    rows = rows_by_email(live_db, send_id)
    # A 421 is about the session: the row and the relay's other rows not handed over go back
    # to the queue with that reply and no attempt (docs/RELAYS.md), never deferred.
    back = [e for e in emails if rows[e].status is DeliveryStatus.QUEUED]
    assert closing in back
    for e in back:
        assert rows[e].attempts == 0 and counts[e] == 0
        assert rows[e].smtp_response.startswith("rcpt 421 4.7.0")
    assert all(
        rows[e].status is DeliveryStatus.SENT and counts[e] == 1 for e in emails if e not in back
    )


class _RedisGoesAway(LocalRateLimiter):
    """Grants the first round, then fails the way an unreachable Redis does."""

    def __init__(self) -> None:
        super().__init__(Limits(0, 0, 0, 600, 60))
        self.calls = 0

    def acquire(self, lease_id: str, wanted: Mapping[str, int]) -> Grant:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("Error 111 connecting to redis")
        return Grant({domain: min(n, 5) for domain, n in wanted.items()})


def test_losing_redis_gives_back_what_was_never_handed_over(
    settings: Settings, live_db: Database
) -> None:
    send_id, _ = running_send(live_db, 60, domains=3)
    with FaultySMTPServer() as server:
        result = run_batch(
            live_db, settings, send_id, limiter=_RedisGoesAway(), relays=parse_smtp_urls(server.url)
        )
        counts = server.counts()
    rows = rows_by_email(live_db, send_id)
    statuses = Counter(r.status for r in rows.values())
    assert statuses[DeliveryStatus.IN_DOUBT] == 0
    assert statuses[DeliveryStatus.SENT] == result.sent == sum(counts.values()) == 15
    for email, row in rows.items():
        if row.status is DeliveryStatus.QUEUED:
            assert counts[email] == 0 and row.attempts == 0
            assert "never handed to the SMTP server" in row.smtp_response
        else:
            assert row.status is DeliveryStatus.SENT and counts[email] == 1


def test_losing_the_database_mid_batch_keeps_every_250_and_records_it_when_it_answers(
    settings: Settings, live_db: Database
) -> None:
    _postgres_only(live_db)
    lanes = dataclasses.replace(settings, delivery_connections_per_batch=4)
    send_id, _ = running_send(live_db, 400, domains=8)
    cut = threading.Event()

    def cut_the_writer_off(server: FaultySMTPServer) -> None:
        server.wait_for_total(100, timeout=30)
        with live_db.engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND query LIKE '%deliveries%' AND application_name = ''"
                )
            )
            conn.commit()
        cut.set()

    with FaultySMTPServer(Script(reply_delay=0.003)) as server:
        cutter = threading.Thread(target=cut_the_writer_off, args=(server,))
        cutter.start()
        result = run_batch(
            live_db, lanes, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
        )
        cutter.join(30)
        counts = server.counts()
    assert cut.is_set()
    rows = rows_by_email(live_db, send_id)
    assert max(counts.values()) == 1, "a recipient got the release twice"
    for email, row in rows.items():
        if counts[email]:
            # Handed over: recorded sent (the 250 was held while the database was away).
            assert row.status is DeliveryStatus.SENT, (email, row.status, row.smtp_response)
            assert row.smtp_response.startswith("dot 250")
        else:
            assert row.status is DeliveryStatus.QUEUED and row.attempts == 0
    assert result.salvaged
