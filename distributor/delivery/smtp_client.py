"""A small, fast SMTP client for bulk delivery: one connection per batch, PIPELINING.

``smtplib`` waits for every reply in turn and copies each message several times; at thousands
of messages a second that is most of the cost. This client writes MAIL, RCPT and DATA in one
packet when the server advertises PIPELINING (RFC 2920), reads the three replies, then sends
the body and waits for the reply to the final dot. Callers split those steps
(``write_envelope`` / ``read_envelope`` / ``send_body``) so they can do other work, such as
recording the in-flight marker in the database, while the envelope replies travel.
"""

from __future__ import annotations

import base64
import contextlib
import random
import re
import socket
import ssl
from collections.abc import Sequence

from distributor.mail.addresses import wire_address
from distributor.mail.outcomes import Reply, Stage
from distributor.mail.transport import SMTPConfig
from distributor.settings import default_helo_name

__all__ = ["Reply", "SMTPClient", "SMTPConnectionLost", "SMTPRefused", "Stage", "choose_relay"]


class SMTPConnectionLost(OSError):
    """The connection broke, timed out or spoke nonsense while waiting at ``stage``."""

    def __init__(self, stage: Stage, reason: str) -> None:
        super().__init__(f"SMTP connection lost at {stage.value}: {reason}")
        self.stage = stage
        self.reason = reason


class SMTPRefused(OSError):
    """The server refused the session itself: the greeting (stage CONNECT) or EHLO, STARTTLS
    or AUTH (stage HELO); ``reply.stage`` says which."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"SMTP session refused at {reply.stage.value}: {reply}")
        self.reply = reply


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


def _address(value: str) -> bytes:
    if any(c in value for c in "\r\n<>"):
        raise ValueError(f"unsafe address {value!r}")
    if not value.isascii():
        # The domain goes out in its IDNA form (RFC 5890), also for addresses stored before
        # input was normalised that way.
        value = wire_address(value)
    return value.encode("utf-8")


class SMTPClient:
    """One SMTP session. Not thread-safe; one per batch."""

    def __init__(self, config: SMTPConfig, *, local_hostname: str | None = None) -> None:
        self.config = config
        self.local_hostname = (
            local_hostname or config.helo_name or default_helo_name("") or socket.gethostname()
        )
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._pending_rcpt = b""
        self.extensions: dict[str, str] = {}
        self.is_pipelining = False
        self.messages_sent = 0

    # -- session ---------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> None:
        """Open the connection, EHLO, STARTTLS and AUTH as configured. ``timeout`` bounds each
        step of the session setup (a blackholed relay must not stall the caller for long);
        replies afterwards wait up to the relay's own timeout."""
        cfg = self.config
        setup_timeout = min(cfg.timeout, timeout) if timeout else cfg.timeout
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=setup_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cfg.use_ssl:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=cfg.host)
        except OSError as exc:
            raise SMTPConnectionLost(Stage.CONNECT, str(exc)) from exc
        self._sock = sock
        self._buffer = b""
        greeting = self._read_reply(Stage.CONNECT)
        if greeting.code != 220:
            self.close()
            raise SMTPRefused(greeting)
        self._ehlo()
        if cfg.starttls and not cfg.use_ssl:
            if "STARTTLS" not in self.extensions:
                self.close()
                raise SMTPRefused(Reply(Stage.HELO, 554, "5.7.0 STARTTLS required but not offered"))
            self._command(b"STARTTLS", Stage.HELO, expect=220)
            context = ssl.create_default_context()
            try:
                assert self._sock is not None
                self._sock = context.wrap_socket(self._sock, server_hostname=cfg.host)
            except OSError as exc:
                self.close()
                raise SMTPConnectionLost(Stage.HELO, f"TLS: {exc}") from exc
            self._buffer = b""
            self._ehlo()
        if cfg.username:
            self._login(cfg.username, cfg.password or "")
        self.is_pipelining = "PIPELINING" in self.extensions
        if self._sock is not None:
            self._sock.settimeout(cfg.timeout)

    def _ehlo(self) -> None:
        reply = self._command(b"EHLO " + self.local_hostname.encode(), Stage.HELO, expect=250)
        self.extensions = {}
        for line in reply.text.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            self.extensions[keyword.upper()] = params

    def _login(self, username: str, password: str) -> None:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or not mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            self._command(f"AUTH PLAIN {token}".encode(), Stage.HELO, expect=235)
            return
        self._command(b"AUTH LOGIN", Stage.HELO, expect=334)
        self._command(base64.b64encode(username.encode()), Stage.HELO, expect=334)
        self._command(base64.b64encode(password.encode()), Stage.HELO, expect=235)

    def _command(self, line: bytes, stage: Stage, *, expect: int) -> Reply:
        self._write(line + b"\r\n", stage)
        reply = self._read_reply(stage)
        if reply.code != expect:
            self.close()
            raise SMTPRefused(reply)
        return reply

    def quit(self) -> None:
        """Say goodbye politely; never raises."""
        if self._sock is None:
            return
        try:
            self._write(b"QUIT\r\n", Stage.HELO)
            self._read_reply(Stage.HELO)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer = b""

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    # -- one message ------------------------------------------------------------------------

    def write_envelope(self, envelope_from: str, recipient: str) -> None:
        """Send MAIL FROM, RCPT TO and DATA in one write (or MAIL FROM only without PIPELINING)."""
        mail = b"MAIL FROM:<" + _address(envelope_from) + b">\r\n"
        rcpt = b"RCPT TO:<" + _address(recipient) + b">\r\n"
        if self.is_pipelining:
            self._write(mail + rcpt + b"DATA\r\n", Stage.MAIL)
        else:
            self._pending_rcpt = rcpt
            self._write(mail, Stage.MAIL)

    def read_envelope(self) -> tuple[Stage, Reply] | None:
        """Read the envelope replies. None when the server waits for the body (354);
        otherwise the stage and the reply that refused the message (the session is RSET)."""
        if self.is_pipelining:
            mail = self._read_reply(Stage.MAIL)
            rcpt = self._read_reply(Stage.RCPT)
            data = self._read_reply(Stage.DATA)
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
        mail = self._read_reply(Stage.MAIL)
        if mail.code != 250:
            self.reset()
            return (Stage.MAIL, mail)
        self._write(self._pending_rcpt, Stage.RCPT)
        rcpt = self._read_reply(Stage.RCPT)
        if rcpt.code not in (250, 251):
            self.reset()
            return (Stage.RCPT, rcpt)
        self._write(b"DATA\r\n", Stage.DATA)
        data = self._read_reply(Stage.DATA)
        if data.code != 354:
            self.reset()
            return (Stage.DATA, data)
        return None

    def send_body(self, message: bytes) -> Reply:
        """Send the message (dot-stuffed here) and return the reply to the final dot.
        A connection lost here raises ``SMTPConnectionLost`` with stage DOT: outcome unknown."""
        self.write_body(message)
        return self.read_body_reply()

    def write_body(self, message: bytes, *, is_dot_safe: bool = False) -> None:
        """Send the message and the final dot; the reply is read by ``read_body_reply``."""
        body, end = wire_parts(message, is_dot_safe=is_dot_safe)
        self._write_parts(body, end, Stage.DOT)

    def read_body_reply(self) -> Reply:
        reply = self._read_reply(Stage.DOT)
        if reply.is_positive:
            self.messages_sent += 1
        return reply

    def fileno(self) -> int:
        """The socket, for ``select``; -1 when closed."""
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def has_buffered_reply(self) -> bool:
        """A whole reply line is already read from the socket, or TLS holds decrypted bytes
        (select would not say so in either case)."""
        if b"\n" in self._buffer:
            return True
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def reset(self) -> None:
        self._write(b"RSET\r\n", Stage.MAIL)
        self._read_reply(Stage.MAIL)

    def send(self, envelope_from: str, recipient: str, message: bytes) -> tuple[Stage, Reply]:
        """Convenience for single messages: the stage and reply that decided the message."""
        self.write_envelope(envelope_from, recipient)
        refusal = self.read_envelope()
        if refusal is not None:
            return refusal
        return Stage.DOT, self.send_body(message)

    # -- wire ---------------------------------------------------------------------------------

    def _write(self, data: bytes, stage: Stage) -> None:
        if self._sock is None:
            raise SMTPConnectionLost(stage, "not connected")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc

    def _write_parts(self, first: bytes, second: bytes, stage: Stage) -> None:
        """Write two buffers with one system call where the socket allows (no joined copy)."""
        sock = self._sock
        if sock is None:
            raise SMTPConnectionLost(stage, "not connected")
        if isinstance(sock, ssl.SSLSocket):
            self._write(first + second, stage)
            return
        try:
            sent = sock.sendmsg([first, second])
            if sent < len(first):  # a partial write: send the rest in order
                sock.sendall(memoryview(first)[sent:])
                sock.sendall(second)
            elif sent < len(first) + len(second):
                sock.sendall(second[sent - len(first) :])
        except OSError as exc:
            self.close()
            raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc

    def _read_line(self, stage: Stage) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
                return line
            if self._sock is None:
                raise SMTPConnectionLost(stage, "not connected")
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                self.close()
                raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc
            if not chunk:
                self.close()
                raise SMTPConnectionLost(stage, "connection closed by server")
            self._buffer += chunk
            if len(self._buffer) > 1_000_000:
                self.close()
                raise SMTPConnectionLost(stage, "reply too long")

    def _read_reply(self, stage: Stage) -> Reply:
        # Fast path: a complete one-line reply already in the buffer (the usual case).
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end >= 4 and buffer[3:4] == b" " and buffer[:3].isdigit():
            self._buffer = buffer[end + 1 :]
            return Reply(
                stage, int(buffer[:3]), buffer[4:end].decode("utf-8", "replace").rstrip("\r")
            )
        lines: list[str] = []
        while True:
            raw = self._read_line(stage)
            if len(raw) < 4 or not raw[:3].isdigit():
                self.close()
                raise SMTPConnectionLost(stage, f"malformed reply {raw[:80]!r}")
            lines.append(raw[4:].decode("utf-8", "replace").rstrip("\r\n"))
            if raw[3:4] != b"-":
                return Reply(stage, int(raw[:3]), "\n".join(lines))
