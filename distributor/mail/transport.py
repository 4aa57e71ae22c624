"""Sending bytes to an SMTP server, behind a small protocol with a test fake.

The session itself (connect, STARTTLS, AUTH, the relay's TLS policy from ``SMTP_URL``) is
``smtp_session.SMTPSession``, the same code the bulk sender uses; this transport sends one
message at a time over it and speaks ``smtplib``'s exceptions to its callers.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from typing import Protocol

from distributor.mail.addresses import missing_for_utf8
from distributor.mail.outcomes import Stage
from distributor.mail.smtp_session import (
    SMTPConfig,
    SMTPConnectionLost,
    SMTPRefused,
    SMTPSession,
    parse_smtp_urls,
)

__all__ = [
    "InMemoryTransport",
    "MailTransport",
    "SMTPConfig",
    "SMTPTransport",
    "SentMessage",
    "parse_smtp_urls",
]


class MailTransport(Protocol):
    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        """Deliver one message; raise ``smtplib.SMTPException`` or ``OSError`` on failure."""


def _wire(value: str) -> bytes:
    if any(c in value for c in "\r\n<>"):
        raise ValueError(f"unsafe address {value!r}")
    return value.encode("utf-8")


class SMTPUTF8NotOffered(smtplib.SMTPNotSupportedError):
    """The message needs SMTPUTF8 and the relay does not offer it; nothing was sent.
    ``reason`` is the outcome authority's words (``outcomes.smtputf8_not_offered``)."""

    def __init__(self, relay: str, missing: str) -> None:
        from distributor.mail.outcomes import smtputf8_not_offered

        self.reason = smtputf8_not_offered(relay, missing)[0]
        super().__init__(self.reason)


class SMTPTransport:
    """One connection per call; fine for single messages (test mails, confirmations)."""

    def __init__(self, config: SMTPConfig) -> None:
        self.config = config

    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        session = SMTPSession(self.config)
        try:
            session.connect()
            self._transaction(session, envelope_from, recipients, message)
        except SMTPRefused as exc:
            raise smtplib.SMTPConnectError(exc.reply.code, exc.reply.text) from exc
        except SMTPConnectionLost as exc:
            if exc.stage is Stage.DOT:
                # RFC 1047: the server may have the message; callers leave it unknown.
                raise smtplib.SMTPServerDisconnected(exc.reason) from exc
            # Never handed over (TLS refusals included): safe to try again.
            raise ConnectionError(exc.reason) from exc
        finally:
            session.quit()

    def _transaction(
        self, session: SMTPSession, envelope_from: str, recipients: list[str], message: bytes
    ) -> None:
        options = b""
        if not all(a.isascii() for a in (envelope_from, *recipients)):
            # RFC 6531: an internationalised mailbox goes only to a relay that offers
            # SMTPUTF8, with BODY=8BITMIME (its headers are raw UTF-8, RFC 6532).
            missing = missing_for_utf8(session.extensions)
            if missing:
                relay = f"{self.config.host}:{self.config.port}"
                raise SMTPUTF8NotOffered(relay, " and ".join(missing))
            options += b" SMTPUTF8 BODY=8BITMIME"
        if "SIZE" in session.extensions:
            options += b" SIZE=%d" % len(message)  # RFC 1870
        reply = session.command(b"MAIL FROM:<" + _wire(envelope_from) + b">" + options, Stage.MAIL)
        if reply.code != 250:
            session.reset()
            raise smtplib.SMTPSenderRefused(reply.code, reply.text.encode(), envelope_from)
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in recipients:
            reply = session.command(b"RCPT TO:<" + _wire(rcpt) + b">", Stage.RCPT)
            if reply.code not in (250, 251):
                refused[rcpt] = (reply.code, reply.text.encode())
        if len(refused) == len(recipients):
            session.reset()
            raise smtplib.SMTPRecipientsRefused(refused)
        reply = session.command(b"DATA", Stage.DATA)
        if reply.code != 354:
            session.reset()
            raise smtplib.SMTPDataError(reply.code, reply.text.encode())
        data = message.replace(b"\r\n.", b"\r\n..")
        if data.startswith(b"."):
            data = b"." + data
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        reply = session.command(data + b".", Stage.DOT)
        if reply.code != 250:
            raise smtplib.SMTPDataError(reply.code, reply.text.encode())


@dataclass
class SentMessage:
    envelope_from: str
    recipients: list[str]
    message: bytes


@dataclass
class InMemoryTransport:
    """Test fake: keeps what it was asked to send."""

    sent: list[SentMessage] = field(default_factory=list)

    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        self.sent.append(SentMessage(envelope_from, list(recipients), message))
