"""The bulk sender through a real Postfix relay (its own instance) into a recording sink.

Each test reads two independent witnesses besides our own rows: Postfix's log (what it accepted
and passed on, by Message-ID) and the sink behind it (what arrived).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import pytest
from sqlalchemy import select

from distributor.audience.models import Suppression
from distributor.db import Database
from distributor.delivery.models import DeliveryStatus
from distributor.delivery.relaystate import LocalRelayState, RelayLimits, RelayState, relay_key
from distributor.delivery.sender import run_batch
from distributor.mail.outcomes import RelayTrouble
from distributor.mail.transport import parse_smtp_urls
from distributor.settings import Settings
from tests.support.delivery_seed import drain, open_limiter, rows_by_email, running_send
from tests.support.postfix import PrivatePostfix, private_postfix
from tests.support.smtp import SMTPSink

pytestmark = pytest.mark.integration


def _sink_message_ids(postfix_sink: SMTPSink) -> Counter[str]:
    return Counter(str(r.message["Message-ID"]).strip("<>") for r in postfix_sink.received)


def test_every_message_goes_through_postfix_exactly_once(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    send_id, _ = running_send(live_db, 300, domains=7)
    with private_postfix(postfix_sink) as relay:
        drain(live_db, settings, send_id, relay.url)
        relay.wait_until_idle()
        passed_on = relay.delivered()
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    ours = Counter(str(r.message_id).strip("<>") for r in rows.values())
    assert len(ours) == 300
    # Postfix passed each of our messages on exactly once, and the sink got each exactly once.
    assert passed_on.sent == ours
    postfix_sink.wait_for(300)
    assert _sink_message_ids(postfix_sink) == ours
    assert passed_on.deferred == passed_on.bounced == 0


def test_postfix_recipient_refusals_are_sorted_by_what_they_say(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    send_id, emails = running_send(live_db, 40, domains=4)
    gone, later = emails[5], emails[6]
    access = {
        gone: "550 5.1.1 Recipient address rejected: User unknown",
        later: "450 4.2.0 Recipient address rejected: try again later",
    }
    with private_postfix(postfix_sink, recipient_access=access) as relay:
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=parse_smtp_urls(relay.url)
        )
        relay.wait_until_idle()
        refusals = relay.smtpd_replies()
        passed_on = relay.delivered()
    rows = rows_by_email(live_db, send_id)
    assert rows[gone].status is DeliveryStatus.FAILED
    assert "5.1.1" in (rows[gone].smtp_response or "")
    assert rows[later].status is DeliveryStatus.DEFERRED
    assert "4.2.0" in (rows[later].smtp_response or "")
    others = {e: r for e, r in rows.items() if e not in (gone, later)}
    assert {r.status for r in others.values()} == {DeliveryStatus.SENT}
    # Postfix's log agrees: it refused exactly those two, and passed the rest on once each.
    assert sorted(line.split(" to=<")[1].split(">")[0] for line in refusals if " to=<" in line) == (
        sorted([gone, later])
    )
    assert sum(passed_on.sent.values()) == len(others)
    with live_db.session() as session:
        suppressed = set(session.scalars(select(Suppression.address)))
    assert gone in suppressed and later not in suppressed


def _drain_adaptive(
    db: Database,
    settings: Settings,
    send_id: int,
    relay: PrivatePostfix,
    state: RelayState,
    *,
    total: int,
    deadline_seconds: float = 240.0,
) -> list[int]:
    """Batches until every row is sent, sleeping while the relay is paused; the connections
    each batch got."""
    relays = parse_smtp_urls(relay.url)
    got: list[int] = []
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        result = run_batch(
            db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        rows = rows_by_email(db, send_id).values()
        if sum(r.status is DeliveryStatus.SENT for r in rows) == total:
            return got
        if result.claimed:
            found = state.status([relay_key(relays[0])])
            got.append(found[0].connections if found else -1)
        else:
            time.sleep(min(2.0, max(0.2, result.retry_after)))
    raise AssertionError("the send did not finish in time")


def _check_once_each(
    relay: PrivatePostfix, postfix_sink: SMTPSink, db: Database, send_id: int
) -> None:
    relay.wait_until_idle()
    passed_on = relay.delivered()
    rows = rows_by_email(db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    ours = Counter(str(r.message_id).strip("<>") for r in rows.values())
    assert passed_on.sent == ours
    postfix_sink.wait_for(len(ours))
    assert _sink_message_ids(postfix_sink) == ours
    # Only the accepted try counted: the relay's refusals cost no recipient an attempt.
    assert {r.attempts for r in rows.values()} == {1}


# Postfix exempts $mynetworks from its client limits unless told otherwise.
_NO_EXCEPTIONS = {"smtpd_client_event_limit_exceptions": ""}


def test_postfix_connection_count_limit_brings_our_connections_down(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    settings = dataclasses.replace(
        settings, delivery_connections_per_batch=6, smtp_relay_recover_seconds=60
    )
    send_id, _ = running_send(live_db, 150, domains=12)
    state = LocalRelayState(RelayLimits.from_settings(settings))
    limits = {**_NO_EXCEPTIONS, "smtpd_client_connection_count_limit": "2"}
    with private_postfix(postfix_sink, main_cf=limits) as relay:
        relays = parse_smtp_urls(relay.url)
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        rows = rows_by_email(live_db, send_id)
        back = [r for r in rows.values() if r.status is DeliveryStatus.QUEUED]
        assert back, "Postfix refused the third connection; the batch's rows went back"
        for row in back:
            assert row.attempts == 0
            assert row.smtp_response.startswith("connect 421 4.7.0"), row.smtp_response
            assert "too many connections from 127.0.0.1" in row.smtp_response
        assert not [r for r in rows.values() if r.status is DeliveryStatus.DEFERRED]
        got = _drain_adaptive(live_db, settings, send_id, relay, state, total=150)
        # Postfix's own log says it turned us away, and our connections came down to its limit.
        assert "Connection concurrency limit exceeded" in relay.log()
        assert got and got[-1] <= 2
        _check_once_each(relay, postfix_sink, live_db, send_id)


def test_postfix_message_rate_limit_lowers_the_shared_rate(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    settings = dataclasses.replace(settings, smtp_relay_recover_seconds=60)
    send_id, _ = running_send(live_db, 40, domains=4)
    state = LocalRelayState(RelayLimits.from_settings(settings))
    # anvil counts MAIL FROM per client per anvil_rate_time_unit.
    limits = {
        **_NO_EXCEPTIONS,
        "smtpd_client_message_rate_limit": "10",
        "anvil_rate_time_unit": "4s",
    }
    with private_postfix(postfix_sink, main_cf=limits) as relay:
        relays = parse_smtp_urls(relay.url)
        run_batch(
            live_db, settings, send_id, limiter=open_limiter(), relays=relays, relay_state=state
        )
        rows = rows_by_email(live_db, send_id)
        back = [r for r in rows.values() if r.status is DeliveryStatus.QUEUED]
        assert back
        for row in back:
            assert row.attempts == 0
            assert row.smtp_response.startswith("mail 450 4.7.1"), row.smtp_response
            assert "too much mail from 127.0.0.1" in row.smtp_response
        # One relay-wide refusal is not charged to any recipient's domain.
        assert not [r for r in rows.values() if r.status is DeliveryStatus.DEFERRED]
        (status,) = state.status([relay_key(relays[0])])
        assert status.kind == RelayTrouble.RATE and status.rate_per_second > 0
        _drain_adaptive(live_db, settings, send_id, relay, state, total=40)
        assert "Message delivery request rate limit exceeded" in relay.log()
        _check_once_each(relay, postfix_sink, live_db, send_id)
