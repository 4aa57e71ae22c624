"""Delivery under faults, with real worker processes, Redis and an SMTP server on loopback.

Each test starts a send through ``start_send`` (so the dispatch goes through the broker after
commit), lets real Celery workers (with the beat sweep embedded) deliver it into
``FaultySMTPServer``, and checks the ledger against what the server received.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from distributor.app import create_app
from distributor.audience.models import Suppression
from distributor.audience.services import address_hash
from distributor.db import Database
from distributor.delivery import services
from distributor.delivery.ledger import PENDING_STATUSES
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support.delivery_seed import bulk_release
from tests.support.faulty_smtp import FaultySMTPServer, Script
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration


def _env(settings: Settings, broker: str, smtp_url: str, **extra: str) -> dict[str, str]:
    values = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": broker,
        "SMTP_URL": smtp_url,
        "DATA_DIR": settings.data_dir,
        "LOG_LEVEL": "WARNING",
        "DELIVERY_BATCH_SIZE": "200",
        "DELIVERY_RETRY_BASE_SECONDS": "1",
        "DELIVERY_CLAIM_TIMEOUT_SECONDS": "4",
        "DELIVERY_PARALLEL_BATCHES": "4",
    }
    return service_env(**{**values, **extra})


def _beat_args(settings: Settings) -> list[str]:
    schedule = Path(settings.data_dir) / f"beat-{uuid.uuid4().hex[:8]}"
    return ["-B", "--schedule", str(schedule)]


def _start(settings: Settings, db: Database, broker: str, smtp_url: str, release_id: int) -> int:
    app = create_app(
        Settings(**{**settings.__dict__, "redis_url": broker, "smtp_url": smtp_url}), db=db
    )
    with app.app_context(), db.session() as session, session.begin():
        send = services.start_send(session, release_id, requested_by_id=None)
        return send.id


def _pending(db: Database, send_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count(Delivery.id)).where(
                    Delivery.send_id == send_id, Delivery.status.in_(PENDING_STATUSES)
                )
            )
            or 0
        )


def _wait_done(db: Database, send_id: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pending(db, send_id) == 0 and _send_status(db, send_id)[0] is SendStatus.FINISHED:
            return
        time.sleep(0.2)
    raise AssertionError(f"send {send_id} still has {_pending(db, send_id)} pending rows")


def _ledger(db: Database, send_id: int) -> dict[str, DeliveryStatus]:
    with db.session() as session:
        return {
            str(email): status
            for email, status in session.execute(
                select(Delivery.email, Delivery.status).where(Delivery.send_id == send_id)
            )
        }


def _in_flight(db: Database, send_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count(Delivery.id)).where(
                    Delivery.send_id == send_id, Delivery.status == DeliveryStatus.SENDING
                )
            )
            or 0
        )


def _counts_by_status(db: Database, send_id: int) -> dict[str, int]:
    with db.session() as session:
        return {
            str(status): int(n)
            for status, n in session.execute(
                select(Delivery.status, func.count(Delivery.id))
                .where(Delivery.send_id == send_id)
                .group_by(Delivery.status)
            )
        }


def _send_status(db: Database, send_id: int) -> tuple[SendStatus, ReleaseStatus]:
    with db.session() as session:
        send = session.get(Send, send_id)
        assert send is not None
        return send.status, send.release.status


def _assert_exactly_once(ledger: dict[str, DeliveryStatus], counts: dict[str, int]) -> int:
    """Every sent row arrived once, nothing arrived twice; returns the unknown rows."""
    assert max(counts.values(), default=0) <= 1, "a recipient got the release twice"
    unknown = 0
    for email, status in ledger.items():
        if status is DeliveryStatus.SENT:
            assert counts.get(email) == 1, (
                f"{email} is recorded sent but arrived {counts.get(email, 0)} times"
            )
        elif status is DeliveryStatus.IN_DOUBT:
            unknown += 1
        else:
            raise AssertionError(f"{email} ended {status.value}")
    return unknown


def test_sigkill_every_worker_mid_send_then_restart(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with live_db.session() as session, session.begin():
        release_id, emails = bulk_release(session, 10_000)
    with FaultySMTPServer() as server:
        env = _env(settings, broker, server.url)
        send_id = _start(settings, live_db, broker, server.url, release_id)
        with celery_worker(env, concurrency=2, extra_args=_beat_args(settings)) as worker:
            server.wait_for_total(3_000, timeout=120)
            # Kill while batches are in flight (rows claimed, messages on the wire).
            deadline = time.monotonic() + 30
            while _in_flight(live_db, send_id) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(worker.pid, signal.SIGKILL)
            # Each batch spreads its rows over DELIVERY_CONNECTIONS_PER_BATCH connections and
            # each connection may hold one message in doubt: the bound is the connections
            # the workers held at once.
            open_connections = server.max_open_connections
            worker.wait()
        at_kill = server.total
        assert 0 < at_kill < len(emails), "the kill should land mid-send"
        with live_db.session() as session:
            stranded = session.scalar(
                select(func.count(Delivery.id)).where(
                    Delivery.send_id == send_id, Delivery.status == DeliveryStatus.SENDING
                )
            )
        assert stranded, (
            "the dead workers should have left claimed rows to recover: "
            f"{_counts_by_status(live_db, send_id)} sink {server.total}"
        )
        with celery_worker(env, concurrency=2, extra_args=_beat_args(settings)):
            _wait_done(live_db, send_id, timeout=150)
        ledger = _ledger(live_db, send_id)
        unknown = _assert_exactly_once(ledger, server.counts())
    assert len(ledger) == 10_000
    assert unknown <= open_connections <= 2 * settings.delivery_connections_per_batch
    assert _send_status(live_db, send_id) == (SendStatus.FINISHED, ReleaseStatus.SENT)


def test_flushing_redis_mid_send_loses_and_duplicates_nothing(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with live_db.session() as session, session.begin():
        release_id, emails = bulk_release(session, 3_000)
    with FaultySMTPServer() as server:
        env = _env(settings, broker, server.url)
        send_id = _start(settings, live_db, broker, server.url, release_id)
        with celery_worker(env, concurrency=2, extra_args=_beat_args(settings)):
            server.wait_for_total(900, timeout=120)
            # Our own Redis database only: other suites share the server.
            redis.Redis.from_url(broker).flushdb()
            _wait_done(live_db, send_id)
        ledger = _ledger(live_db, send_id)
        unknown = _assert_exactly_once(ledger, server.counts())
    assert unknown == 0
    assert len(ledger) == len(emails) == server.total


def test_temporary_permanent_and_lost_replies(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with live_db.session() as session, session.begin():
        release_id, emails = bulk_release(session, 60, domains=3)
    busy, bad, lost = emails[3:6], emails[10:12], emails[20]
    script = Script(temp_fail_once=set(busy), hard_fail=set(bad), drop_after_dot={lost})
    with FaultySMTPServer(script) as server:
        env = _env(settings, broker, server.url)
        send_id = _start(settings, live_db, broker, server.url, release_id)
        with celery_worker(env, concurrency=2, extra_args=_beat_args(settings)):
            _wait_done(live_db, send_id, timeout=90)
        counts = server.counts()
    with live_db.session() as session:
        rows = {
            d.email: d for d in session.scalars(select(Delivery).where(Delivery.send_id == send_id))
        }
        for email in busy:  # 451 4.3.0 at RCPT the first time, while the relay took the
            # others: that recipient's deferral (one attempt), delivered on the next.
            assert (rows[email].status, rows[email].attempts, counts[email]) == (
                DeliveryStatus.SENT,
                2,
                1,
            )
        for email in bad:  # 550 5.1.1: failed and suppressed
            assert rows[email].status is DeliveryStatus.FAILED
            assert rows[email].smtp_code == 550
            assert rows[email].smtp_response.startswith("rcpt 550 5.1.1")
            assert counts[email] == 0
            hashed = address_hash(email)
            assert session.scalar(select(Suppression).where(Suppression.address_hash == hashed))
        # Dropped after the final dot: in doubt, listed for staff, not resent.
        assert rows[lost].status is DeliveryStatus.IN_DOUBT and counts[lost] == 1
        assert rows[lost].smtp_response.startswith("dot: in doubt: the final dot was written")
        assert [d.email for d in services.list_in_doubt(session, release_id)] == [lost]
        others = set(emails) - set(busy) - set(bad) - {lost}
        assert all(rows[e].status is DeliveryStatus.SENT and counts[e] == 1 for e in others)
        assert all(rows[e].message_id for e in others)
        # Each row keeps the reply that decided it, with its stage.
        assert all(rows[e].smtp_response.startswith("dot 250 2.0.0") for e in others)
    assert _send_status(live_db, send_id) == (SendStatus.FINISHED, ReleaseStatus.SENT)


def test_the_same_batch_task_delivered_five_times_sends_once(
    settings: Settings, live_db: Database, broker: str
) -> None:
    with live_db.session() as session, session.begin():
        release_id, emails = bulk_release(session, 600)
    with FaultySMTPServer() as server:
        env = _env(settings, broker, server.url, DELIVERY_BATCH_SIZE="150")
        send_id = _start(settings, live_db, broker, server.url, release_id)
        redis.Redis.from_url(broker).flushdb()  # drop the dispatch: we deliver by hand
        app = create_app(Settings(**{**settings.__dict__, "redis_url": broker}), db=live_db)
        celery = app.extensions["celery"]
        task_id = str(uuid.uuid4())
        for _ in range(5):  # one task, redelivered five times (same id, same arguments)
            celery.send_task("delivery.send_batch", args=[send_id], task_id=task_id)
        with celery_worker(env, concurrency=5):
            _wait_done(live_db, send_id, timeout=90)
        ledger = _ledger(live_db, send_id)
        unknown = _assert_exactly_once(ledger, server.counts())
    assert unknown == 0
    assert server.total == len(emails)
