"""One batch, run in this process against a real SMTP server: limits and domain throttling."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Connection

from distributor.db import Database
from distributor.delivery import ledger, pump, sender
from distributor.delivery.ledger import Claim
from distributor.delivery.models import DeliveryStatus, Send, SendStatus
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


def test_a_domain_that_says_slow_down_waits_while_others_go_out(
    settings: Settings, live_db: Database
) -> None:
    send_id, emails = running_send(live_db, 30, domains=3)  # d0, d1, d2.example
    slow = next(e for e in emails if e.endswith("@d1.example"))
    with FaultySMTPServer(Script(greylist={slow})) as server:
        result = run_batch(
            live_db,
            settings,
            send_id,
            limiter=open_limiter(),
            relays=parse_smtp_urls(server.url),
        )
        counts = server.counts()
    rows = rows_by_email(live_db, send_id)
    assert result.claimed == 30
    assert rows[slow].status is DeliveryStatus.DEFERRED and rows[slow].smtp_code == 451
    assert rows[slow].smtp_response.startswith("rcpt 451 4.7.1")
    for email, row in rows.items():
        if email.endswith("@d1.example") and email != slow:
            # Not tried after the 421: back in the queue for after the domain's pause.
            assert row.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT)
            if row.status is DeliveryStatus.QUEUED:
                assert row.next_attempt_at is not None and counts[email] == 0
        elif not email.endswith("@d1.example"):
            assert row.status is DeliveryStatus.SENT and counts[email] == 1
    assert any(
        r.status is DeliveryStatus.QUEUED for e, r in rows.items() if e.endswith("@d1.example")
    )


def test_a_batch_waits_for_the_domain_rate_instead_of_giving_up(
    settings: Settings, live_db: Database
) -> None:
    send_id, _ = running_send(live_db, 12, domains=1)
    with FaultySMTPServer() as server:
        result = run_batch(
            live_db,
            settings,
            send_id,
            limiter=open_limiter(domain_rate_per_second=6),
            relays=parse_smtp_urls(server.url),
        )
        total = server.total
    assert (result.sent, result.put_back, total) == (12, 0, 12)
    assert all(r.status is DeliveryStatus.SENT for r in rows_by_email(live_db, send_id).values())


def test_rows_still_over_the_rate_after_a_while_go_back_to_the_queue_unsent(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender, "_RATE_PATIENCE_SECONDS", 0.0)
    send_id, _ = running_send(live_db, 20, domains=1)
    with FaultySMTPServer() as server:
        result = run_batch(
            live_db,
            settings,
            send_id,
            limiter=open_limiter(domain_rate_per_second=5),
            relays=parse_smtp_urls(server.url),
        )
        total = server.total
    rows = rows_by_email(live_db, send_id).values()
    assert (result.sent, result.put_back, total) == (5, 15, 5)
    queued = [r for r in rows if r.status is DeliveryStatus.QUEUED]
    assert len(queued) == 15
    assert all(r.next_attempt_at is not None and r.attempts == 0 for r in queued)


def test_a_batch_spreads_over_its_connections_and_keeps_each_domain_on_one(
    settings: Settings, live_db: Database
) -> None:
    import dataclasses

    lanes = dataclasses.replace(settings, delivery_connections_per_batch=4)
    send_id, emails = running_send(live_db, 120, domains=12)
    with FaultySMTPServer(Script(reply_delay=0.002)) as server:
        result = run_batch(
            live_db, lanes, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
        )
        connection_of = dict(server.connection_of)
        most_at_once = server.max_open_connections
    assert (result.claimed, result.sent) == (120, 120)
    assert result.commits < 120  # acceptances of several connections share a statement
    assert 1 < most_at_once <= 4
    by_domain: dict[str, set[int]] = {}
    for email in emails:
        assert len(connection_of[email]) == 1  # exactly once
        by_domain.setdefault(email.rpartition("@")[2], set()).update(connection_of[email])
    assert all(len(used) == 1 for used in by_domain.values())
    assert len(set().union(*by_domain.values())) == most_at_once
    rows = rows_by_email(live_db, send_id)
    assert all(r.status is DeliveryStatus.SENT and r.claim_lane is not None for r in rows.values())


def test_a_batch_over_starttls_with_auth_uses_all_its_connections(
    settings: Settings,
    live_db: Database,
    tmp_path: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses
    from pathlib import Path

    from aiosmtpd.smtp import AuthResult

    from tests.support.smtp import SMTPSink
    from tests.support.tls import make_certificate, server_context

    certificate = make_certificate(Path(str(tmp_path)))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    logins = []

    def authenticate(*_args: object) -> AuthResult:
        logins.append(1)
        return AuthResult(success=True)

    lanes = dataclasses.replace(settings, delivery_connections_per_batch=4)
    send_id, emails = running_send(live_db, 60, domains=12)
    with SMTPSink(
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=authenticate,
    ) as relay:
        url = f"smtp://user:pw@127.0.0.1:{relay.port}?starttls=1"
        result = run_batch(
            live_db, lanes, send_id, limiter=open_limiter(), relays=parse_smtp_urls(url)
        )
        received = relay.wait_for(60)
    assert (result.sent, result.deferred, result.in_doubt) == (60, 0, 0)
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(emails)
    assert 1 < len(logins) <= 4  # one login per connection


def test_pausing_mid_batch_stops_every_connection_and_returns_what_was_not_handed_over(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import threading
    import time

    monkeypatch.setattr(pump, "_STATUS_CHECK_SECONDS", 0.05)
    lanes = dataclasses.replace(settings, delivery_connections_per_batch=4)
    send_id, _ = running_send(live_db, 200, domains=8)
    results = []
    with FaultySMTPServer(Script(reply_delay=0.01)) as server:
        worker = threading.Thread(
            target=lambda: results.append(
                run_batch(
                    live_db,
                    lanes,
                    send_id,
                    limiter=open_limiter(),
                    relays=parse_smtp_urls(server.url),
                )
            )
        )
        worker.start()
        server.wait_for_total(20, timeout=30)
        with live_db.session() as session, session.begin():
            send = session.get(Send, send_id)
            assert send is not None
            send.status = SendStatus.PAUSED
        worker.join(30)
        time.sleep(0.1)
        received = server.counts()
    (result,) = results
    assert not result.is_send_running
    assert result.sent + result.put_back == result.claimed == 200
    assert 20 <= result.sent < 200
    rows = rows_by_email(live_db, send_id)
    sent = {e for e, r in rows.items() if r.status is DeliveryStatus.SENT}
    assert sent == set(received) and all(n == 1 for n in received.values())
    assert all(r.status is DeliveryStatus.QUEUED for e, r in rows.items() if e not in sent)


def test_a_paused_send_is_not_claimed(settings: Settings, live_db: Database) -> None:
    send_id, _ = running_send(live_db, 5, domains=1)
    with live_db.session() as session, session.begin():
        send = session.get(Send, send_id)
        assert send is not None
        send.status = SendStatus.PAUSED
    with FaultySMTPServer() as server:
        result = run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
        )
        assert server.total == 0
    assert (result.claimed, result.is_send_running) == (0, False)


def test_each_claim_of_a_worker_starts_where_its_last_one_ended(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_id, _ = running_send(live_db, 9, domains=3)
    hints: list[tuple[int, int]] = []

    def claim_batch(conn: Connection, **kwargs: Any) -> Claim | None:
        claim = ledger.claim_batch(conn, **kwargs)
        hints.append((kwargs["after"], claim.after if claim else -1))
        return claim

    monkeypatch.setattr(sender, "claim_batch", claim_batch)
    with FaultySMTPServer() as server:
        for _ in range(3):
            result = run_batch(
                live_db,
                settings,
                send_id,
                limiter=open_limiter(),
                relays=parse_smtp_urls(server.url),
                batch_size=3,
            )
            assert result.claimed == 3
    # Each claim is handed the hint the one before it returned.
    assert [after for after, _ in hints[1:]] == [returned for _, returned in hints[:-1]]
    assert hints[0][1] < hints[1][1] < hints[2][1]
