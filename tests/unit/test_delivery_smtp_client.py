"""The bulk SMTP client against a real server on loopback."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from distributor.delivery.smtp_client import (
    SMTPClient,
    SMTPConnectionLost,
    choose_relay,
    dot_stuff,
)
from distributor.mail.outcomes import Stage
from distributor.mail.transport import SMTPConfig, parse_smtp_urls
from tests.support.faulty_smtp import FaultySMTPServer, Script
from tests.support.smtp import SMTPSink

MESSAGE = b"Subject: hi\r\nTo: a@example.org\r\n\r\nline one\r\n.leading dot\r\n"


def test_dot_stuffing_doubles_leading_dots_and_ends_the_data() -> None:
    assert dot_stuff(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert dot_stuff(b"x\r\n") == b"x\r\n.\r\n"


def test_pipelined_messages_over_one_connection() -> None:
    with FaultySMTPServer() as server:
        client = SMTPClient(SMTPConfig("127.0.0.1", server.port))
        client.connect()
        assert client.is_pipelining
        for i in range(20):
            stage, reply = client.send("bounces+t@b.example", f"r{i}@example.org", MESSAGE)
            assert (stage, reply.code) == (Stage.DOT, 250)
        client.quit()
        assert server.total == 20
        assert server.max_open_connections == 1
        # The server got the dot-stuffed line back as it was sent.
        assert b"\r\n..leading dot\r\n" in server.samples["r0@example.org"]


def test_the_next_envelope_rides_with_the_final_dot() -> None:
    """RFC 2920 3.1: body, final dot and the next MAIL, RCPT, DATA in one write; the reply
    to the dot is read first, then the next envelope's, and the session stays in step (a
    refused recipient behind the dot included)."""
    script = Script(hard_fail={"bad@example.org"})
    with FaultySMTPServer(script) as server:
        client = SMTPClient(SMTPConfig("127.0.0.1", server.port))
        client.connect()
        rcpts = [f"r{i}@example.org" for i in range(5)] + ["bad@example.org", "last@example.org"]
        client.write_envelope("bounces+t@b.example", rcpts[0], len(MESSAGE))
        assert client.read_envelope() is None
        outcomes = []
        for i, rcpt in enumerate(rcpts):
            follow = rcpts[i + 1] if i + 1 < len(rcpts) else None
            then = client.pipelined_envelope("bounces+t@b.example", follow) if follow else b""
            client.write_body(MESSAGE, then=then)
            outcomes.append(client.read_body_reply().code)
            if follow is None:
                break
            refusal = client.read_envelope()
            if refusal is not None:
                outcomes.append(refusal[1].code)
                client.write_envelope("bounces+t@b.example", rcpts[i + 2], len(MESSAGE))
                assert client.read_envelope() is None
                break
        client.write_body(MESSAGE)
        outcomes.append(client.read_body_reply().code)
        client.quit()
    assert outcomes == [250, 250, 250, 250, 250, 550, 250]
    assert server.counts() == {r: 1 for r in rcpts if r != "bad@example.org"}


def test_refusals_name_their_stage_and_leave_the_session_usable() -> None:
    script = Script(hard_fail={"bad@example.org"}, temp_fail_once={"busy@example.org"})
    with FaultySMTPServer(script) as server:
        client = SMTPClient(SMTPConfig("127.0.0.1", server.port))
        client.connect()
        stage, reply = client.send("f@example.org", "bad@example.org", MESSAGE)
        assert (stage, reply.code) == (Stage.RCPT, 550)
        assert "5.1.1" in reply.text
        stage, reply = client.send("f@example.org", "busy@example.org", MESSAGE)
        assert (stage, reply.code) == (Stage.RCPT, 451)
        stage, reply = client.send("f@example.org", "busy@example.org", MESSAGE)
        assert (stage, reply.code) == (Stage.DOT, 250)
        client.quit()
        assert server.counts() == {"busy@example.org": 1}


def test_a_connection_dropped_after_the_dot_is_reported_at_the_dot() -> None:
    with FaultySMTPServer(Script(drop_after_dot={"gone@example.org"})) as server:
        client = SMTPClient(SMTPConfig("127.0.0.1", server.port))
        client.connect()
        with pytest.raises(SMTPConnectionLost) as caught:
            client.send("f@example.org", "gone@example.org", MESSAGE)
        assert caught.value.stage is Stage.DOT
        assert not client.is_connected


def test_lock_step_without_pipelining_against_aiosmtpd() -> None:
    with SMTPSink() as sink:
        client = SMTPClient(SMTPConfig("127.0.0.1", sink.port))
        client.connect()
        client.is_pipelining = False  # aiosmtpd advertises it; force the fallback path
        stage, reply = client.send("f@example.org", "desk@example.org", MESSAGE)
        client.quit()
        assert (stage, reply.code) == (Stage.DOT, 250)
        [received] = sink.wait_for(1)
        assert received.rcpt_tos == ["desk@example.org"]
        assert b".leading dot" in received.raw


def test_relays_are_chosen_by_weight() -> None:
    relays = parse_smtp_urls("smtp://a.example:25?weight=3, smtp://b.example:25?weight=1")
    rng = random.Random(7)
    picks = [choose_relay(relays, rng).host for _ in range(4000)]
    share = picks.count("a.example") / len(picks)
    assert 0.7 < share < 0.8


def test_connecting_to_a_closed_port_is_a_connect_stage_loss() -> None:
    from tests.support.services import free_port

    client = SMTPClient(SMTPConfig("127.0.0.1", free_port(), timeout=2))
    with pytest.raises(SMTPConnectionLost) as caught:
        client.connect()
    assert caught.value.stage is Stage.CONNECT


def test_dot_safe_quoted_printable_never_starts_a_line_with_a_dot() -> None:
    import binascii
    import random

    from distributor.delivery.mime import dot_safe, html_value, text_value

    rng = random.Random(5)
    for _ in range(2000):  # per-recipient values: one logical line ending in a soft break
        value = "".join(rng.choice(".. ab=é") for _ in range(rng.randint(1, 200)))
        for encoded in (text_value(value), html_value(value)):
            assert not encoded.startswith(b".") and b"\n." not in encoded
            assert encoded.endswith(b"=\r\n")
            assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
    for _ in range(3000):
        data = bytes(rng.choice(b"..ab= \n\xc3\xa9") for _ in range(rng.randint(0, 300)))
        raw = binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")
        safe = dot_safe(raw)
        assert not safe.startswith(b".") and b"\n." not in safe
        assert binascii.a2b_qp(safe) == binascii.a2b_qp(raw)
        assert max(len(line) for line in safe.split(b"\r\n")) <= 76


def test_a_dot_safe_message_goes_out_without_a_copy() -> None:
    from distributor.delivery.smtp_client import wire_parts

    message = b"Subject: x\r\n\r\nbody\r\n"
    body, end = wire_parts(message, is_dot_safe=True)
    assert body is message and end == b".\r\n"
    body, end = wire_parts(b"a\r\n.b", is_dot_safe=False)
    assert body + end == b"a\r\n..b\r\n.\r\n"


def test_an_internationalised_domain_goes_into_rcpt_in_idna_form() -> None:
    """Addresses stored with a Unicode domain still reach the relay in punycode (RFC 5890)."""
    from distributor.delivery.smtp_client import _address

    assert _address("anna@bücher.example") == b"anna@xn--bcher-kva.example"
    assert _address("desk@example.org") == b"desk@example.org"


class _StallingServer:
    """Answers the greeting, EHLO and (optionally) the envelope, then neither reads nor
    writes: the client's reads and writes must still give up after the relay's timeout."""

    def __init__(self, *, answer_envelope: bool) -> None:
        self.answer_envelope = answer_envelope
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.release = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 stalling\r\n")
            lines.readline()
            conn.sendall(b"250-stalling\r\n250 PIPELINING\r\n")
            if self.answer_envelope:
                for _ in range(3):
                    lines.readline()
                conn.sendall(b"250 ok\r\n250 ok\r\n354 go on\r\n")
            self.release.wait(10)

    def close(self) -> None:
        self.release.set()
        self.listener.close()


def _session(server: _StallingServer) -> SMTPClient:
    """A session with the stalling server, its envelope written (``timeout`` 0.5 s)."""
    client = SMTPClient(SMTPConfig("127.0.0.1", server.port, timeout=0.5))
    client.connect()
    client.write_envelope("f@example.org", "r@example.org", 10)
    return client


def test_a_silent_server_times_out_a_read_after_the_relay_timeout() -> None:
    server = _StallingServer(answer_envelope=False)
    try:
        client = _session(server)
        started = time.monotonic()
        with pytest.raises(SMTPConnectionLost) as lost:
            client.read_envelope()
        assert (lost.value.stage, lost.value.reason) == (Stage.MAIL, "timed out")
        assert 0.4 < time.monotonic() - started < 5
        assert not client.is_connected
    finally:
        server.close()


def test_a_server_that_stops_reading_times_out_the_body_at_the_dot() -> None:
    server = _StallingServer(answer_envelope=True)
    try:
        client = _session(server)
        assert client.read_envelope() is None
        started = time.monotonic()
        with pytest.raises(SMTPConnectionLost) as lost:
            # Far more than the kernel's socket buffers hold: the write must wait, then give up.
            client.write_body(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 300_000)
        # From the first byte of the body on, the outcome is in doubt (RFC 1047).
        assert (lost.value.stage, lost.value.reason) == (Stage.DOT, "timed out")
        assert 0.4 < time.monotonic() - started < 5
    finally:
        server.close()
