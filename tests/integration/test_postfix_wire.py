"""The bulk sender through a real Postfix relay: STARTTLS with a private CA, a CA that does
not vouch for the relay, a short ``smtpd_timeout`` and a ``message_size_limit`` below the
message's size.

Each test reads two witnesses besides our rows: Postfix's own log (what it accepted and passed
on, by Message-ID; its TLS and timeout lines) and the sink behind it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from distributor.db import Database
from distributor.delivery.models import DeliveryStatus, Send, SendStatus
from distributor.mail.relay_check import check_relays
from distributor.settings import Settings
from tests.support.delivery_seed import drain, rows_by_email, running_send
from tests.support.postfix import PrivatePostfix, private_postfix
from tests.support.scripted_smtp import StallingLimiter
from tests.support.smtp import SMTPSink
from tests.support.tls import issue_certificate, make_private_ca

pytestmark = pytest.mark.integration


def _with_private_ca(relay: PrivatePostfix) -> Path:
    """Give ``relay`` a certificate signed by a private CA made here; the CA file's path."""
    ca = make_private_ca(relay.folder / "ca")
    relay.tls = issue_certificate(relay.folder / "tls", ca)
    return ca[0]


def _send(db: Database, send_id: int) -> Send:
    with db.session() as session:
        send = session.get(Send, send_id)
        assert send is not None
        session.expunge(send)
        return send


def _exactly_once(
    db: Database, send_id: int, relay: PrivatePostfix, postfix_sink: SMTPSink
) -> None:
    """Our rows, Postfix's log and the sink agree: every message went through once."""
    relay.wait_until_idle()
    passed_on = relay.delivered()
    rows = rows_by_email(db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.SENT}
    ours = Counter(str(r.message_id).strip("<>") for r in rows.values())
    assert set(ours.values()) == {1}
    assert passed_on.sent == ours
    postfix_sink.wait_for(len(ours))
    assert Counter(str(r.message["Message-ID"]).strip("<>") for r in postfix_sink.received) == ours
    assert passed_on.deferred == passed_on.bounced == 0


def test_starttls_with_a_private_ca_named_in_smtp_url(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    send_id, _ = running_send(live_db, 60, domains=5)
    relay = private_postfix(postfix_sink, main_cf={"smtpd_tls_loglevel": "1"})
    ca_file = _with_private_ca(relay)
    with relay:
        url = f"{relay.url}?starttls=required&ca_file={ca_file}&tls_min=1.2"
        (status,) = check_relays(url)
        drain(live_db, settings, send_id, url)
        _exactly_once(live_db, send_id, relay, postfix_sink)
        log = relay.log()
    assert status.is_reachable and "TLS certificate trusted" in status.detail
    # Postfix saw every session of ours over TLS 1.2 or newer.
    assert "TLS connection established from" in log
    assert all("TLSv1.2" in line or "TLSv1.3" in line for line in _tls_lines(log))


def _tls_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "TLS connection established from" in line]


def test_a_ca_that_does_not_vouch_for_the_relay_is_a_certificate_error_shown_as_such(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink, tmp_path: Path
) -> None:
    send_id, _ = running_send(live_db, 30, domains=3)
    relay = private_postfix(postfix_sink)
    _with_private_ca(relay)
    other_ca = make_private_ca(tmp_path / "other", name="Some Other CA")[0]
    with relay:
        url = f"{relay.url}?starttls=required&ca_file={other_ca}"
        (status,) = check_relays(url)
        drain(live_db, settings, send_id, url)
        log = relay.log()
    expected = "relay certificate not trusted: unable to get local issuer certificate"
    # The startup check, the send page's reason and every row say so, naming the CA file.
    assert not status.is_reachable
    assert status.detail.startswith(expected) and f"(CA file: {other_ca})" in status.detail
    send = _send(live_db, send_id)
    assert send.status is SendStatus.PAUSED
    assert expected in send.pause_reason and str(other_ca) in send.pause_reason
    assert "no SMTP relay reachable" not in send.pause_reason
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.QUEUED}
    assert all(r.attempts == 0 and expected in (r.smtp_response or "") for r in rows.values())
    # Nothing reached Postfix's queue or the sink.
    assert "message-id=" not in log and postfix_sink.received == []


def test_sessions_postfix_timed_out_while_idle_are_reopened_and_nobody_pays(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    send_id, _ = running_send(live_db, 24, domains=4)
    with private_postfix(postfix_sink, smtpd_options={"smtpd_timeout": "1s"}) as relay:
        # One message per domain, then every session sits idle past smtpd_timeout.
        drain(live_db, settings, send_id, relay.url, limiter=StallingLimiter(stall=3.0))
        _exactly_once(live_db, send_id, relay, postfix_sink)
        log = relay.log()
    assert log.count("timeout after") >= 2  # Postfix closed our idle sessions
    rows = rows_by_email(live_db, send_id)
    assert {r.attempts for r in rows.values()} == {1}
    assert all(r.smtp_response.startswith("dot 250") for r in rows.values())


def test_a_message_over_postfixs_message_size_limit_is_never_sent_and_pauses_the_send(
    settings: Settings, live_db: Database, postfix_sink: SMTPSink
) -> None:
    send_id, _ = running_send(live_db, 20, domains=4)
    with private_postfix(postfix_sink, main_cf={"message_size_limit": "4000"}) as relay:
        drain(live_db, settings, send_id, relay.url)
        log = relay.log()
    send = _send(live_db, send_id)
    assert send.status is SendStatus.PAUSED
    assert "over the relay's limit of 4000 bytes" in send.pause_reason
    rows = rows_by_email(live_db, send_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.QUEUED}
    assert all(r.attempts == 0 for r in rows.values())
    assert all("over the relay's limit" in (r.smtp_response or "") for r in rows.values())
    # Postfix never got as far as a MAIL FROM (it would log a reject or a queue id), and
    # nothing reached the sink.
    assert "message-id=" not in log and "reject:" not in log and postfix_sink.received == []
    assert "connect from" in log  # it did see us: we read its SIZE and went no further
