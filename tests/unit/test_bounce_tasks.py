"""The periodic bounce sweeps are scheduled and do their job when beat runs them."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from distributor.bounces import tasks
from distributor.bounces.models import InboundMessage
from distributor.bounces.services import receive_message
from distributor.celery_app import BEAT_SCHEDULE, TASK_MODULES
from distributor.db import utcnow
from distributor.settings import Settings
from tests.support.bounces import sample


def test_the_sweeps_are_scheduled() -> None:
    scheduled = {task for task, _seconds in BEAT_SCHEDULE.values()}
    assert {"bounces.purge_raw", "bounces.poll_mailbox", "bounces.process_pending"} <= scheduled
    assert "distributor.bounces.tasks" in TASK_MODULES


@pytest.mark.usefixtures("app_ctx")
def test_purge_task_forgets_old_raw_messages(session: Session, settings: Settings) -> None:
    inbound = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))
    inbound.received_at = utcnow() - dt.timedelta(days=31)
    session.commit()

    assert tasks.purge_raw.run() == 1

    session.expire_all()
    row = session.get(InboundMessage, inbound.id)
    assert row is not None and row.raw is None


@pytest.mark.usefixtures("app_ctx")
def test_poll_task_does_nothing_without_a_mailbox() -> None:
    assert tasks.poll_bounce_mailbox.run() == 0


def test_cli_purge_and_poll(app: Flask, session: Session, settings: Settings) -> None:
    inbound = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))
    inbound.received_at = utcnow() - dt.timedelta(days=45)
    session.commit()
    runner = app.test_cli_runner()

    purged = runner.invoke(args=["bounces", "purge"])
    assert purged.exit_code == 0, purged.output
    assert "purged 1 raw messages" in purged.output

    poll = runner.invoke(args=["bounces", "poll"])
    assert poll.exit_code != 0
    assert "BOUNCE_MAILBOX_URL" in poll.output
