"""A small, fast SMTP client for bulk delivery: one per lane of a batch, PIPELINING.

``smtplib`` waits for every reply in turn and copies each message several times; at thousands
of messages a second that is most of the cost. This client writes MAIL, RCPT and DATA in one
packet when the server advertises PIPELINING (RFC 2920), reads the three replies, then sends
the body and waits for the reply to the final dot. ``pump.Pump`` splits those steps
(``write_envelope`` / ``read_envelope`` / ``write_body`` / ``read_body_reply``) so that while
one lane's replies travel it drives the other lanes and commits their acceptances.

A message to a mailbox whose local part is not ASCII carries ``SMTPUTF8`` and
``BODY=8BITMIME`` on its MAIL FROM (RFC 6531: its envelope and its UTF-8 headers,
RFC 6532, need both); to a relay that does not offer SMTPUTF8 it is not started at all
(``SMTPUTF8NotOffered``), so nothing is handed over that the relay cannot carry.
"""

from __future__ import annotations

import random
import re
import select
import ssl
import time
from collections.abc import Sequence

from distributor.mail.addresses import missing_for_utf8, wire_address
from distributor.mail.outcomes import Reply, Stage, size_refusal
from distributor.mail.smtp_session import (
    SMTPConfig,
    SMTPConnectionLost,
    SMTPRefused,
    SMTPSession,
)

__all__ = [
    "Reply",
    "SMTPClient",
    "SMTPConnectionLost",
    "SMTPRefused",
    "SMTPUTF8NotOffered",
    "Stage",
    "choose_relay",
]


class SMTPUTF8NotOffered(ValueError):
    """The message needs SMTPUTF8 and this session's relay does not offer it (nothing was
    written); ``relay`` names it for the outcome authority's reason."""

    def __init__(self, relay: str, missing: str) -> None:
        super().__init__(f"{relay} does not offer {missing}")
        self.relay = relay
        self.missing = missing


def choose_relay(relays: Sequence[SMTPConfig], rng: random.Random | None = None) -> SMTPConfig:
    """Pick a relay at random in proportion to its weight."""
    if len(relays) == 1:
        return relays[0]
    weights = [max(0, r.weight) for r in relays]
    if not any(weights):
        weights = [1] * len(relays)
    return (rng or random).choices(list(relays), weights=weights, k=1)[0]


_LINE_DOT = re.compile(rb"\n\.")


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2: double a leading dot on every line; end with CRLF "." CRLF."""
    return b"".join(wire_parts(message))


def wire_parts(message: bytes, *, is_dot_safe: bool = False) -> tuple[bytes, bytes]:
    """The message as DATA content and its terminator, without copying a message that needs
    no dot-stuffing. ``is_dot_safe``: the caller built the message so that no line starts with
    a dot (``mime.MessageTemplate`` does), which spares the scan of every byte."""
    if not is_dot_safe:
        if message.startswith(b"."):
            message = b"." + message
        if _LINE_DOT.search(message) is not None:  # about twice as fast as bytes.find here
            message = message.replace(b"\r\n.", b"\r\n..")
    return message, (b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n")


# MAIL 250, RCPT 250 or 251, DATA 354, each a one-line reply (RFC 5321 4.2.1), in the buffer.
_ENVELOPE_ACCEPTED = re.compile(rb"250 [^\n]*\n25[01] [^\n]*\n354 [^\n]*\n")

_UNSAFE_IN_ADDRESS = re.compile(r"[\r\n<>]")


def _address(value: str) -> bytes:
    if _UNSAFE_IN_ADDRESS.search(value) is not None:
        raise ValueError(f"unsafe address {value!r}")
    if not value.isascii():
        # The domain goes out in its IDNA form (RFC 5890), also for addresses stored before
        # input was normalised that way.
        value = wire_address(value)
    return value.encode("utf-8")


class SMTPClient(SMTPSession):
    """One bulk SMTP session (connect, TLS and AUTH are ``SMTPSession``'s). One per lane."""

    def __init__(self, config: SMTPConfig, *, local_hostname: str | None = None) -> None:
        super().__init__(config, local_hostname=local_hostname)
        self._pending_rcpt = b""
        self.messages_sent = 0
        self.last_used = time.monotonic()  # when the server last answered us

    def connect(self, timeout: float | None = None, *, authenticate: bool = True) -> None:
        super().connect(timeout, authenticate=authenticate)
        self.last_used = time.monotonic()

    def refuse_oversize(self, size: int) -> Reply | None:
        """RFC 1870: a message larger than the server's advertised SIZE is refused here,
        before a byte of it goes out; None when it may go."""
        return size_refusal(size, self.size_limit)

    def has_gone_away(self) -> bool:
        """Between messages: did the server close the session while we were idle (a timeout
        ``421``, a reset, EOF)? Answered without waiting: a server that has something to say
        while no command is outstanding is saying goodbye. Such a session is closed here."""
        sock = self._sock
        if sock is None:
            return True
        if self._buffer or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0):
            self.close()
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            readable = [sock]
        if readable:
            self.close()
            return True
        return False

    # -- one message ------------------------------------------------------------------------

    def write_envelope(self, envelope_from: str, recipient: str, size: int = 0) -> None:
        """Send MAIL FROM, RCPT TO and DATA in one write (or MAIL FROM only without PIPELINING).
        ``size``: the message's size in bytes, declared when the server offers SIZE (RFC 1870).
        Raises ``SMTPUTF8NotOffered`` before writing anything when the addresses need
        SMTPUTF8 and the relay lacks it."""
        mail, rcpt = self._envelope_lines(envelope_from, recipient, size)
        if self.is_pipelining:
            self._write(mail + rcpt + b"DATA\r\n", Stage.MAIL)
        else:
            self._pending_rcpt = rcpt
            self._write(mail, Stage.MAIL)

    def pipelined_envelope(self, envelope_from: str, recipient: str, size: int = 0) -> bytes:
        """MAIL FROM, RCPT TO and DATA of a message as one pipelined group (the session must
        offer PIPELINING), for ``write_body(..., then=)`` to send behind the previous
        message's final dot; its replies are read by ``read_envelope`` once that message's
        reply is read. Raises ``SMTPUTF8NotOffered`` as ``write_envelope`` does."""
        mail, rcpt = self._envelope_lines(envelope_from, recipient, size)
        return mail + rcpt + b"DATA\r\n"

    def _envelope_lines(self, envelope_from: str, recipient: str, size: int) -> tuple[bytes, bytes]:
        sender, to = _address(envelope_from), _address(recipient)
        declared = b" SIZE=%d" % size if size and "SIZE" in self.extensions else b""
        if sender.isascii() and to.isascii():
            mail = b"MAIL FROM:<" + sender + b">" + declared + b"\r\n"
        else:
            missing = missing_for_utf8(self.extensions)
            if missing:
                cfg = self.config
                raise SMTPUTF8NotOffered(f"{cfg.host}:{cfg.port}", " and ".join(missing))
            mail = b"MAIL FROM:<" + sender + b">" + declared + b" SMTPUTF8 BODY=8BITMIME\r\n"
        return mail, b"RCPT TO:<" + to + b">\r\n"

    def read_envelope(self) -> tuple[Stage, Reply] | None:
        """Read the envelope replies. None when the server waits for the body (354);
        otherwise the stage and the reply that refused the message (the session is RSET, or
        closed after a ``421``, which closes the channel: RFC 5321 3.8)."""
        if self.is_pipelining:
            accepted = _ENVELOPE_ACCEPTED.match(self._buffer)
            if accepted is not None:
                # The usual case, all three replies read already: 250, 250 (or 251), 354 on
                # one line each. Nothing of them is kept, so no Reply is made.
                self._buffer = self._buffer[accepted.end() :]
                self.last_used = time.monotonic()
                return None
            mail = self._reply_or_closing(Stage.MAIL)
            if mail.code == 421:
                return (Stage.MAIL, mail)
            rcpt = self._reply_or_closing(Stage.RCPT)
            if rcpt.code == 421:
                return (Stage.RCPT, rcpt)
            data = self._reply_or_closing(Stage.DATA)
            if data.code == 421:
                return (Stage.DATA, data)
            if mail.code != 250:
                refusal = (Stage.MAIL, mail)
            elif rcpt.code not in (250, 251):
                refusal = (Stage.RCPT, rcpt)
            elif data.code != 354:
                refusal = (Stage.DATA, data)
            else:
                return None
            if data.code == 354:
                # Should not happen (no valid recipient), but then the server wants a body:
                # send an empty message's end so the session stays in step, then RSET.
                self._write(b".\r\n", Stage.DATA)
                self._read_reply(Stage.DATA)
            self.reset()
            return refusal
        mail = self._reply_or_closing(Stage.MAIL)
        if mail.code != 250:
            self._reset_unless_closed(mail)
            return (Stage.MAIL, mail)
        self._write(self._pending_rcpt, Stage.RCPT)
        rcpt = self._reply_or_closing(Stage.RCPT)
        if rcpt.code not in (250, 251):
            self._reset_unless_closed(rcpt)
            return (Stage.RCPT, rcpt)
        self._write(b"DATA\r\n", Stage.DATA)
        data = self._reply_or_closing(Stage.DATA)
        if data.code != 354:
            self._reset_unless_closed(data)
            return (Stage.DATA, data)
        return None

    def _reply_or_closing(self, stage: Stage) -> Reply:
        reply = self._read_reply(stage)
        self.last_used = time.monotonic()
        if reply.code == 421:
            self.close()  # RFC 5321 3.8: the server closes the channel after a 421
        return reply

    def _reset_unless_closed(self, reply: Reply) -> None:
        if reply.code != 421:
            self.reset()

    def send_body(self, message: bytes) -> Reply:
        """Send the message (dot-stuffed here) and return the reply to the final dot.
        A connection lost here raises ``SMTPConnectionLost`` with stage DOT: outcome unknown."""
        self.write_body(message)
        return self.read_body_reply()

    def write_body(self, message: bytes, *, is_dot_safe: bool = False, then: bytes = b"") -> None:
        """Send the message and the final dot; the reply is read by ``read_body_reply``.
        ``then``: the next message's ``pipelined_envelope``, in the same write. RFC 2920 3.1
        allows message content first in a group and DATA last, so the server reads the final
        dot and the next envelope together and answers them together: one write and one read
        fewer per message on both sides. Should the write fail, it is unknown how much of
        ``then`` went out: the connection is lost anyway, and no body of it did."""
        body, end = wire_parts(message, is_dot_safe=is_dot_safe)
        self._write_parts((body, end, then) if then else (body, end), Stage.DOT)

    def read_body_reply(self) -> Reply:
        reply = self._read_reply(Stage.DOT)
        self.last_used = time.monotonic()
        if reply.is_positive:
            self.messages_sent += 1
        return reply

    def send(self, envelope_from: str, recipient: str, message: bytes) -> tuple[Stage, Reply]:
        """Convenience for single messages: the stage and reply that decided the message."""
        oversize = self.refuse_oversize(len(message))
        if oversize is not None:
            return Stage.MAIL, oversize
        self.write_envelope(envelope_from, recipient, len(message))
        refusal = self.read_envelope()
        if refusal is not None:
            return refusal
        return Stage.DOT, self.send_body(message)

    # -- wire ---------------------------------------------------------------------------------

    def _write_parts(self, parts: tuple[bytes, ...], stage: Stage) -> None:
        """Write buffers with one system call where the socket allows (no joined copy)."""
        sock = self._sock
        if sock is None:
            raise SMTPConnectionLost(stage, "not connected")
        if isinstance(sock, ssl.SSLSocket):
            self._write(b"".join(parts), stage)
            return
        try:
            sent = sock.sendmsg(parts)
        except BlockingIOError:  # a non-blocking socket with a full buffer: nothing went out
            sent = 0
        except OSError as exc:
            self.close()
            raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc
        for part in parts:  # after a partial write: the rest in order, waiting for room
            if sent >= len(part):
                sent -= len(part)
                continue
            self._write(memoryview(part)[sent:] if sent else part, stage)
            sent = 0
