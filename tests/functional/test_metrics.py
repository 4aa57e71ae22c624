"""``/metrics``: Prometheus text that says what the database says, for the right callers only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.audience.models import ImportJob, ImportStatus, LawfulBasis
from distributor.db import Database, utcnow
from distributor.delivery.models import Delivery, DeliveryClaim, DeliveryStatus, Send, SendStatus
from distributor.mail.transport import InMemoryTransport
from distributor.reports.health import dashboard
from distributor.settings import Settings
from tests.support import delivery_factories as f

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels (parsed as Prometheus would)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[("distributor_" + name, tuple(sorted(labels.items())))]


@pytest.fixture()
def token_app(settings: Settings, db: Database) -> Flask:
    with_token = dataclasses.replace(settings, metrics_token="scrape-me-0123456789")
    return create_app(with_token, db=db, mail_transport=InMemoryTransport())


def test_loopback_may_scrape_without_a_token_and_the_text_parses(app: Flask) -> None:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    for expected in (
        "distributor_messages",
        "distributor_sends",
        "distributor_send_rate_messages_per_second",
        "distributor_oldest_claim_age_seconds",
        "distributor_deferred_messages",
        "distributor_bounce_rate",
        "distributor_complaint_rate",
        "distributor_tracking_buffer_events",
        "distributor_tracking_flush_lag_seconds",
        "distributor_import_jobs",
    ):
        assert expected in names, expected


def test_without_a_token_remote_and_proxied_requests_are_refused(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics", environ_base=REMOTE).status_code == 403
    # A reverse proxy on this host makes the request come from loopback: still refused.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})
    assert proxied.status_code == 403
    assert client.get("/metrics", headers={"Forwarded": "for=198.51.100.4"}).status_code == 403


def test_with_a_token_only_the_token_opens_it(token_app: Flask) -> None:
    client = token_app.test_client()
    good = {"Authorization": "Bearer scrape-me-0123456789"}
    assert client.get("/metrics", headers=good, environ_base=REMOTE).status_code == 200
    missing = client.get("/metrics")  # loopback alone is not enough once a token is set
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer scrape-me-0123456780"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_the_figures_are_the_database_state(app: Flask, session: Session) -> None:
    now = utcnow()
    release = f.release(session, photo=False, attachments=False)
    rows = {
        DeliveryStatus.SENT: 3,
        DeliveryStatus.DEFERRED: 2,
        DeliveryStatus.FAILED: 1,
        DeliveryStatus.QUEUED: 4,
        DeliveryStatus.SENDING: 1,
    }
    made: list[Delivery] = []
    for status, count in rows.items():
        for _ in range(count):
            made.append(
                f.send_with_delivery(session, release, f.journalist(session), status=status)
            )
    send = session.get(Send, made[0].send_id)
    assert send is not None and send.status is SendStatus.RUNNING
    send.recipient_count = len(made)
    send.last_claim_at = now - dt.timedelta(seconds=40)
    for d in made:
        if d.status is DeliveryStatus.SENT:
            d.smtp_code, d.sent_at = 250, now - dt.timedelta(seconds=5)
        elif d.status is DeliveryStatus.DEFERRED:
            d.smtp_code = 421
            d.next_attempt_at = now + dt.timedelta(minutes=5)
        elif d.status is DeliveryStatus.FAILED:
            d.smtp_code = 550
            d.smtp_response = "550 5.1.1 <gone@example.org>: Recipient address rejected"
        elif d.status is DeliveryStatus.SENDING:
            # A live batch: claimed 30 s ago, its claim's heartbeat moved 5 s ago.
            claim = DeliveryClaim(
                send_id=d.send_id,
                worker="worker-a",
                claimed_at=now - dt.timedelta(seconds=30),
                heartbeat_at=now - dt.timedelta(seconds=5),
            )
            session.add(claim)
            session.flush()
            d.claim_id = claim.id
            d.claimed_by, d.claimed_at = "worker-a", now - dt.timedelta(seconds=30)
    # One deferred row is due for its retry already.
    due = next(d for d in made if d.status is DeliveryStatus.DEFERRED)
    due.next_attempt_at = now - dt.timedelta(seconds=1)
    session.add(
        ImportJob(
            content="", lawful_basis=LawfulBasis.CONSENT, status=ImportStatus.RUNNING,
            total_rows=1000, processed_rows=250,
        )
    )  # fmt: skip
    session.commit()

    samples = _samples(app.test_client().get("/metrics").data)

    assert _value(samples, "messages", status="sent", reply_class="2xx") == 3
    assert _value(samples, "messages", status="deferred", reply_class="4xx") == 2
    assert _value(samples, "messages", status="failed", reply_class="5xx") == 1
    assert _value(samples, "messages", status="queued", reply_class="none") == 4
    assert _value(samples, "sends", status="running") == 1
    label = str(send.id)
    assert _value(samples, "send_recipients", send_id=label) == 11
    assert _value(samples, "send_done_messages", send_id=label) == 4  # sent + failed
    assert _value(samples, "send_rate_messages_per_second", send_id=label) == pytest.approx(3 / 60)
    assert _value(samples, "send_live_batches", send_id=label) == 1
    assert 40 <= _value(samples, "send_last_claim_age_seconds", send_id=label) < 100
    assert _value(samples, "claimed_messages") == 1
    assert 5 <= _value(samples, "oldest_claim_age_seconds") < 60
    assert _value(samples, "deferred_messages") == 2
    assert _value(samples, "deferred_due_messages") == 1
    assert _value(samples, "import_jobs", status="running") == 1
    running = [k for k in samples if k[0] == "distributor_import_running_rows"]
    assert sorted(samples[k] for k in running) == [250, 1000]
    board = dashboard(session, days=7)  # the sending-health report's own figures
    assert _value(samples, "bounce_rate", window="7d") == pytest.approx(board.bounce_rate)
    assert _value(samples, "complaint_rate", window="7d") == pytest.approx(board.complaint_rate)
    assert board.bounce_rate > 0
    assert _value(samples, "tracking_buffer_events") == 0  # no Redis: written through


def test_a_scrape_inside_the_cache_window_reuses_the_figures(app: Flask, session: Session) -> None:
    client = app.test_client()
    first = _samples(client.get("/metrics").data)
    release = f.release(session, photo=False, attachments=False)
    f.send_with_delivery(session, release, f.journalist(session))
    session.execute(update(Send).values(status=SendStatus.RUNNING))
    session.commit()
    again = _samples(client.get("/metrics").data)
    assert _value(again, "sends", status="running") == _value(first, "sends", status="running")


def test_the_grafana_dashboard_uses_only_metrics_we_expose(app: Flask) -> None:
    dashboard_file = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "distributor.json"
    board = json.loads(dashboard_file.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = {name for q in queries for name in re.findall(r"\bdistributor_[a-z_]+", q)}
    exposed = {
        family.name
        for family in text_string_to_metric_families(app.test_client().get("/metrics").text)
    }
    assert used and used <= exposed, used - exposed
