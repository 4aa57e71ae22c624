"""Internationalised local parts (RFC 6531/6532) against real SMTP servers on loopback.

Two aiosmtpd servers: one that offers SMTPUTF8 and one that does not. With the first, a
batch names the mailbox in UTF-8 with ``SMTPUTF8 BODY=8BITMIME`` and writes the To header
as raw UTF-8; the address check accepts such an address. With the second, the address is
refused at input, and a row queued while the relay still offered it is failed with the
outcome authority's reason while every other row goes out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from distributor.db import Database
from distributor.delivery.models import DeliveryStatus
from distributor.delivery.sender import run_batch
from distributor.mail import outgoing
from distributor.mail.addresses import InvalidAddress, normalise_address
from distributor.mail.relay_check import CachedRelayCheck
from distributor.mail.rendering import RenderedEmail
from distributor.mail.transport import SMTPConfig, SMTPTransport, SMTPUTF8NotOffered
from distributor.settings import Settings
from tests.support.delivery_seed import (
    open_limiter,
    rows_by_email,
    running_send,
)
from tests.support.smtp import SMTPSink

pytestmark = pytest.mark.integration

TYPED = "José@例子.广告"
STORED = "josé@xn--fsqu00a.xn--4rr70v"


@pytest.fixture()
def utf8_relay() -> Iterator[SMTPSink]:
    with SMTPSink(enable_SMTPUTF8=True) as sink:
        yield sink


@pytest.fixture()
def ascii_relay() -> Iterator[SMTPSink]:
    # aiosmtpd's Controller offers SMTPUTF8 unless told not to.
    with SMTPSink(enable_SMTPUTF8=False) as sink:
        yield sink


def _send_with_one_utf8_address(db: Database, n: int = 6) -> tuple[int, str]:
    """A running send whose first recipient's address was internationalised."""
    send_id, emails = running_send(db, n, domains=2)
    with db.engine.begin() as conn:
        for table, column in (("journalists", "email"), ("journalists", "email_normalized")):
            conn.execute(
                text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                {"new": STORED, "old": emails[0]},
            )
        conn.execute(
            text("UPDATE deliveries SET email = :new WHERE email = :old"),
            {"new": STORED, "old": emails[0]},
        )
    return send_id, emails[0]


def test_the_address_check_asks_the_relay(utf8_relay: SMTPSink, ascii_relay: SMTPSink) -> None:
    offered = CachedRelayCheck(utf8_relay.url)
    assert offered.smtputf8_refusal() is None
    assert normalise_address(TYPED, relay=offered) == STORED
    assert normalise_address("用户@例子.广告", relay=offered) == "用户@xn--fsqu00a.xn--4rr70v"

    not_offered = CachedRelayCheck(ascii_relay.url)
    with pytest.raises(InvalidAddress) as refused:
        normalise_address(TYPED, relay=not_offered)
    message = str(refused.value)
    assert f"our mail relay 127.0.0.1:{ascii_relay.port} does not offer SMTPUTF8" in message
    assert "RFC 6531" in message and "plain-ASCII name part" in message
    # An internationalised domain alone needs nothing of the relay.
    assert normalise_address("ana@例子.广告", relay=not_offered) == "ana@xn--fsqu00a.xn--4rr70v"


def test_a_batch_sends_the_utf8_mailbox_with_smtputf8(
    settings: Settings, live_db: Database, utf8_relay: SMTPSink
) -> None:
    send_id, _ = _send_with_one_utf8_address(live_db)
    result = run_batch(
        live_db,
        settings,
        send_id,
        limiter=open_limiter(),
        relays=[SMTPConfig.from_url(utf8_relay.url)],
    )
    assert result.sent == 6
    received = utf8_relay.wait_for(6)
    (intl,) = [r for r in received if r.rcpt_tos == [STORED]]
    # RFC 1870's SIZE= comes first when the relay offers SIZE; then RFC 6531's two parameters.
    assert intl.mail_options[1:] == ["SMTPUTF8", "BODY=8BITMIME"]
    assert intl.mail_options[0].startswith("SIZE=")
    # RFC 6532: the To header carries the mailbox as raw UTF-8 (no encoded word).
    to_line = next(line for line in intl.raw.split(b"\r\n") if line.startswith(b"To:"))
    assert STORED.encode("utf-8") in to_line and b"=?" not in to_line.split(b"<")[-1]
    others = [r for r in received if r is not intl]
    # Plain ASCII mail asks for nothing but its SIZE (RFC 1870).
    assert all([o.split("=")[0] for o in r.mail_options] == ["SIZE"] for r in others)
    assert all(
        row.status is DeliveryStatus.SENT for row in rows_by_email(live_db, send_id).values()
    )


def test_a_relay_that_stopped_offering_it_fails_that_row_alone(
    settings: Settings, live_db: Database, ascii_relay: SMTPSink
) -> None:
    send_id, _ = _send_with_one_utf8_address(live_db)
    result = run_batch(
        live_db,
        settings,
        send_id,
        limiter=open_limiter(),
        relays=[SMTPConfig.from_url(ascii_relay.url)],
    )
    rows = rows_by_email(live_db, send_id)
    row = rows[STORED]
    assert (row.status, row.smtp_code, row.attempts) == (DeliveryStatus.FAILED, None, 0)
    relay = f"127.0.0.1:{ascii_relay.port}"
    assert row.smtp_response.startswith(f"not sent (5.6.7): our relay {relay} does not offer")
    assert "SMTPUTF8" in row.smtp_response
    # Every other row went out; the send was not paused and nobody else was charged.
    assert (result.sent, result.failed, result.is_send_running) == (5, 1, True)
    assert all(r.status is DeliveryStatus.SENT for e, r in rows.items() if e != STORED)
    assert len(ascii_relay.wait_for(5)) == 5
    assert all(STORED not in r.rcpt_tos for r in ascii_relay.received)


def test_transactional_mail_takes_the_same_road(
    settings: Settings, utf8_relay: SMTPSink, ascii_relay: SMTPSink
) -> None:
    mail = outgoing.build_transactional(
        settings,
        rendered=RenderedEmail(subject="Bitte bestätigen", html="<p>Hallo</p>", text="Hallo"),
        from_name="Press office",
        to_address=STORED,
    )
    SMTPTransport(SMTPConfig.from_url(utf8_relay.url)).send(
        mail.envelope_from, [mail.recipient], mail.message
    )
    (got,) = utf8_relay.wait_for(1)
    assert got.rcpt_tos == [STORED]
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(got.mail_options)  # smtplib adds SIZE=
    assert b"\r\nTo: " + STORED.encode("utf-8") + b"\r\n" in got.raw
    assert got.mail_from.startswith("bounces+")  # the VERP sender, as every mail

    with pytest.raises(SMTPUTF8NotOffered) as refused:
        SMTPTransport(SMTPConfig.from_url(ascii_relay.url)).send(
            mail.envelope_from, [mail.recipient], mail.message
        )
    assert f"our relay 127.0.0.1:{ascii_relay.port} does not offer SMTPUTF8" in str(
        refused.value.reason
    )
    assert ascii_relay.received == []
