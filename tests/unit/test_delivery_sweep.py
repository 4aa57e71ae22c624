"""The dispatch sweep restarts a send that lost its batch tasks, and only such a send."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.db import utcnow
from distributor.delivery import services
from distributor.delivery import tasks as delivery_tasks
from distributor.delivery.models import Delivery, DeliveryClaim, DeliveryStatus, Send
from tests.support import delivery_factories as f
from tests.support.delivery_seed import approved_release, person, subscribe


@pytest.fixture()
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(
        delivery_tasks.dispatch_send, "delay", lambda send_id: calls.append(send_id)
    )
    return calls


@pytest.fixture()
def running_send(session: Session, make_user: Callable[..., User], enqueued: list[int]) -> Send:
    beat = f.beat(session, "Harbours")
    for i in range(5):
        subscribe(session, person(session, f"desk{i}@port{i}.example"), [beat])
    release = approved_release(session, beats=[beat])
    send = services.start_send(session, release.id, requested_by_id=make_user(Role.EDITOR).id)
    session.commit()
    assert enqueued == [send.id]  # starting the send enqueued its batch chains once
    enqueued.clear()
    return send


def _state(
    session: Session,
    send: Send,
    *,
    last_claim_ago: float | None,
    dispatched_ago: float | None,
    claim_heartbeat_ago: float | None = None,
) -> None:
    """Put the send in a moment of its life, times in seconds before now."""
    now = utcnow()

    def ago(seconds: float | None) -> dt.datetime | None:
        return None if seconds is None else now - dt.timedelta(seconds=seconds)

    session.execute(
        update(Send)
        .where(Send.id == send.id)
        .values(last_claim_at=ago(last_claim_ago), dispatched_at=ago(dispatched_ago))
    )
    if claim_heartbeat_ago is not None:
        # One batch holds one row in ``sending``; the rest are still queued. Its claim's
        # heartbeat was last moved ``claim_heartbeat_ago`` seconds ago.
        claim = DeliveryClaim(
            send_id=send.id,
            worker="worker-1",
            claimed_at=ago(last_claim_ago or claim_heartbeat_ago),
            heartbeat_at=ago(claim_heartbeat_ago),
        )
        session.add(claim)
        session.flush()
        first = min(d.id for d in session.query(Delivery).filter_by(send_id=send.id))
        session.execute(
            update(Delivery)
            .where(Delivery.id == first)
            .values(
                status=DeliveryStatus.SENDING,
                claim_id=claim.id,
                claimed_by="worker-1",
                claimed_at=ago(last_claim_ago or claim_heartbeat_ago),
                claim_lane=0,
            )
        )
    session.commit()


def _sweep(app: Flask, times: int = 1) -> None:
    with app.app_context():
        for _ in range(times):
            delivery_tasks.sweep()


def test_a_long_batch_behind_a_slow_relay_gets_no_extra_tasks(
    app: Flask, session: Session, running_send: Send, enqueued: list[int]
) -> None:
    # The batch claimed a minute ago and keeps its heartbeat; rows are still due.
    _state(session, running_send, last_claim_ago=60, dispatched_ago=600, claim_heartbeat_ago=1)
    _sweep(app, times=10)
    assert enqueued == []


def test_tasks_waiting_in_the_broker_are_not_enqueued_again(
    app: Flask, session: Session, running_send: Send, enqueued: list[int]
) -> None:
    # Enqueued 5 s ago, no worker free to claim yet: they are still on their way.
    _state(session, running_send, last_claim_ago=None, dispatched_ago=5)
    _sweep(app, times=5)
    assert enqueued == []
    # Still nothing claimed after the claim timeout: given up on, enqueued once more.
    _state(session, running_send, last_claim_ago=None, dispatched_ago=400)
    _sweep(app, times=5)
    assert enqueued == [running_send.id]


def test_a_send_that_lost_its_tasks_is_restarted_once(
    app: Flask, session: Session, running_send: Send, enqueued: list[int]
) -> None:
    # Batches claimed until 10 s ago, then the broker lost the successors: no live batch.
    _state(session, running_send, last_claim_ago=10, dispatched_ago=300)
    _sweep(app, times=5)
    assert enqueued == [running_send.id]


def test_a_batch_whose_heartbeat_stopped_does_not_hold_the_send(
    app: Flask, session: Session, running_send: Send, enqueued: list[int]
) -> None:
    # The worker died 250 s ago (its rows are recovered later, at the claim timeout); the
    # queued rows need not wait for that.
    _state(session, running_send, last_claim_ago=250, dispatched_ago=600, claim_heartbeat_ago=250)
    _sweep(app, times=3)
    assert enqueued == [running_send.id]
