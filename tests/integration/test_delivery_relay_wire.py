"""What the relay's wire tells a batch: SIZE (RFC 1870), the same content refusal for
recipient after recipient, and sessions the server closed while they sat idle.

A scripted SMTP server on loopback (``tests.support.scripted_smtp``) plays the relay; each test
reads what it received besides our own rows.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from distributor.db import Database
from distributor.delivery import services
from distributor.delivery.models import DeliveryStatus, Send, SendStatus
from distributor.delivery.sender import BatchResult, run_batch
from distributor.mail.transport import parse_smtp_urls
from distributor.settings import Settings
from tests.support.delivery_seed import (
    open_limiter,
    rows_by_email,
    running_send,
)
from tests.support.scripted_smtp import ScriptedSMTPServer, StallingLimiter

pytestmark = pytest.mark.integration


def _send(db: Database, send_id: int) -> Send:
    with db.session() as session:
        send = session.get(Send, send_id)
        assert send is not None
        session.expunge(send)
        return send


def _batch(db: Database, settings: Settings, send_id: int, server: ScriptedSMTPServer) -> None:
    run_batch(db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url))


def _three_in_a_row(settings: Settings) -> Settings:
    """Three of the same refusal in a row count, on one connection (so "in a row" is the
    order the server saw)."""
    return dataclasses.replace(
        settings, delivery_pause_after_same_refusals=3, delivery_connections_per_batch=1
    )


def _batch_result(
    db: Database, settings: Settings, send_id: int, server: ScriptedSMTPServer
) -> BatchResult:
    return run_batch(
        db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(server.url)
    )


def test_the_size_is_declared_when_the_relay_offers_size(
    settings: Settings, live_db: Database
) -> None:
    send_id, emails = running_send(live_db, 6, domains=2)
    with ScriptedSMTPServer(size_limit=10_000_000) as server:
        _batch(live_db, settings, send_id, server)
        lines = list(server.mail_lines)
        accepted = server.accepted
    assert {r.status for r in rows_by_email(live_db, send_id).values()} == {DeliveryStatus.SENT}
    assert sorted(accepted) == sorted(emails)
    sizes = [int(m.group(1)) for m in (re.search(rb" SIZE=(\d+)$", line) for line in lines) if m]
    assert len(sizes) == 6 and all(size > 2000 for size in sizes)


def test_a_message_over_the_advertised_size_is_never_sent_and_pauses_the_send(
    settings: Settings, live_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_id, emails = running_send(live_db, 20, domains=4)
    with ScriptedSMTPServer(size_limit=2000) as server:
        _batch(live_db, settings, send_id, server)
        mail_lines, bodies = list(server.mail_lines), sum(server.bodies_seen.values())
    # Not one MAIL FROM, let alone a body: the limit was read from EHLO and kept.
    assert mail_lines == [] and bodies == 0
    send = _send(live_db, send_id)
    assert send.status is SendStatus.PAUSED
    assert "over the relay's limit of 2000 bytes" in send.pause_reason
    assert "5.3.4" in send.pause_reason and "same refusal of this message" in send.pause_reason
    rows = rows_by_email(live_db, send_id)
    # Nobody is failed or charged for it, and every row says why it waits.
    assert {r.status for r in rows.values()} == {DeliveryStatus.QUEUED}
    assert all(r.attempts == 0 for r in rows.values())
    for row in rows.values():
        assert "never handed to the SMTP server" in (row.smtp_response or "")
        assert "over the relay's limit of 2000 bytes" in (row.smtp_response or "")

    # Resuming on a relay that takes the message sends every one of them once.
    dispatched: list[int] = []
    monkeypatch.setattr(
        "distributor.delivery.tasks.dispatch_send.delay", lambda sid: dispatched.append(sid)
    )
    with live_db.session() as session, session.begin():
        services.resume_send(session, send.release_id)
    assert dispatched == [send_id]
    with ScriptedSMTPServer(size_limit=10_000_000) as bigger:
        _batch(live_db, settings, send_id, bigger)
        accepted = bigger.accepted
    assert sorted(accepted) == sorted(emails) and set(accepted.values()) == {1}
    assert {r.status for r in rows_by_email(live_db, send_id).values()} == {DeliveryStatus.SENT}


def test_the_same_content_refusal_in_a_row_pauses_the_send_with_the_reason(
    settings: Settings, live_db: Database
) -> None:
    three = _three_in_a_row(settings)
    send_id, _ = running_send(live_db, 30, domains=5)
    spam = b"554 5.7.1 Message rejected: looks like spam"
    with ScriptedSMTPServer(dot_reply=lambda rcpt: spam) as server:
        _batch(live_db, three, send_id, server)
        tried = sum(server.bodies_seen.values())
    send = _send(live_db, send_id)
    assert send.status is SendStatus.PAUSED
    assert "3 recipients in a row" in send.pause_reason
    assert "dot 554 5.7.1 Message rejected" in send.pause_reason
    rows = rows_by_email(live_db, send_id)
    failed = [r for r in rows.values() if r.status is DeliveryStatus.FAILED]
    assert tried == len(failed) == 3
    assert all(r.is_policy_rejection and "5.7.1" in (r.smtp_response or "") for r in failed)
    assert all(
        r.status is DeliveryStatus.QUEUED
        for r in rows.values()
        if r.status is not DeliveryStatus.FAILED
    )


def test_refusals_broken_by_acceptances_do_not_pause_the_send(
    settings: Settings, live_db: Database
) -> None:
    three = _three_in_a_row(settings)
    send_id, emails = running_send(live_db, 30, domains=5)
    refused = set(emails[::2])

    def reply(rcpt: str) -> bytes:
        return b"550 5.6.0 Content rejected" if rcpt in refused else b"250 2.0.0 Ok"

    with ScriptedSMTPServer(dot_reply=reply) as server:
        _batch(live_db, three, send_id, server)
    assert _send(live_db, send_id).status is SendStatus.RUNNING
    rows = rows_by_email(live_db, send_id)
    assert {e for e, r in rows.items() if r.status is DeliveryStatus.FAILED} == refused
    assert {e for e, r in rows.items() if r.status is DeliveryStatus.SENT} == set(emails) - refused


def test_a_temporary_lookup_failure_at_rcpt_defers_that_recipient_only(
    settings: Settings, live_db: Database
) -> None:
    send_id, emails = running_send(live_db, 30, domains=5)
    failing = set(emails[::4])

    def rcpt(address: str) -> bytes:
        if address in failing:
            return b"451 4.3.0 <" + address.encode() + b">: Temporary lookup failure"
        return b"250 2.1.5 Ok"

    with ScriptedSMTPServer(rcpt_reply=rcpt) as server:
        result = _batch_result(live_db, settings, send_id, server)
        accepted = server.accepted
    rows = rows_by_email(live_db, send_id)
    # RFC 3463 4.3.0 at RCPT, while the relay takes the others: that recipient waits, charged
    # one attempt, and nothing else slows down (no relay pause, nobody put back).
    assert result.put_back == 0 and result.sent == len(emails) - len(failing)
    assert sorted(accepted) == sorted(set(emails) - failing)
    for email, row in rows.items():
        if email in failing:
            assert row.status is DeliveryStatus.DEFERRED and row.attempts == 1
            assert row.next_attempt_at is not None
            assert (row.smtp_response or "").startswith("rcpt 451 4.3.0")
        else:
            assert row.status is DeliveryStatus.SENT
    assert _send(live_db, send_id).status is SendStatus.RUNNING


def test_the_same_deferral_for_recipients_in_a_row_is_the_relays_trouble(
    settings: Settings, live_db: Database
) -> None:
    three = _three_in_a_row(settings)
    send_id, emails = running_send(live_db, 20, domains=4)
    lookup_down = b"451 4.3.0 Temporary lookup failure"
    with ScriptedSMTPServer(rcpt_reply=lambda address: lookup_down) as server:
        result = _batch_result(live_db, three, send_id, server)
        asked = list(server.rcpt_lines)
    rows = rows_by_email(live_db, send_id)
    deferred = [r for r in rows.values() if r.status is DeliveryStatus.DEFERRED]
    back = [r for r in rows.values() if r.status is DeliveryStatus.QUEUED]
    # Three recipients in a row got it: those three wait, charged; then the relay is paused
    # and every other row goes back uncharged with the relay's reply, never asked.
    assert len(asked) == len(deferred) == 3 and all(r.attempts == 1 for r in deferred)
    assert len(back) == len(emails) - 3 and result.put_back >= len(back) - 3
    assert all(r.attempts == 0 and "451 4.3.0" in (r.smtp_response or "") for r in back)
    assert result.retry_after > 0
    # A paused relay is no reason to pause the send: it goes on when the relay does.
    assert _send(live_db, send_id).status is SendStatus.RUNNING


def test_sessions_the_server_closed_while_idle_are_reopened_at_no_cost(
    settings: Settings, live_db: Database
) -> None:
    send_id, emails = running_send(live_db, 16, domains=4)
    with ScriptedSMTPServer(idle_timeout=0.4) as server:
        result = run_batch(
            live_db,
            settings,
            send_id,
            limiter=StallingLimiter(stall=1.5),
            relays=parse_smtp_urls(server.url),
        )
        accepted, idle_closes, connections = server.accepted, server.idle_closes, server.connections
    # Every lane's session was closed by the server while idle, and reopened.
    assert idle_closes >= 2 and connections >= 2 * idle_closes
    assert result.sent == 16 and result.deferred == 0 and result.put_back == 0
    rows = rows_by_email(live_db, send_id)
    # Every message went once, each row on its first attempt, none deferred or delayed.
    assert sorted(accepted) == sorted(emails) and set(accepted.values()) == {1}
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    assert {r.attempts for r in rows.values()} == {1}
