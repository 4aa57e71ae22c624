"""Sending bytes to an SMTP server, behind a small protocol with a test fake."""

from __future__ import annotations

import dataclasses
import smtplib
import ssl
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class MailTransport(Protocol):
    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        """Deliver one message; raise ``smtplib.SMTPException`` or ``OSError`` on failure."""


@dataclass(frozen=True)
class SMTPConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_ssl: bool = False  # implicit TLS (smtps://, port 465)
    starttls: bool = False
    timeout: float = 30.0
    weight: int = 1
    helo_name: str = ""  # SMTP_HELO_NAME (Settings.helo_name); set by parse_smtp_urls

    @classmethod
    def from_url(cls, url: str) -> SMTPConfig:
        """Parse ``smtp://user:pass@host:port?starttls=1&weight=3`` or ``smtps://...``."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"SMTP_URL has no host: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        use_ssl = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if use_ssl else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_ssl=use_ssl,
            starttls=query.get("starttls", "0").lower() in {"1", "true", "yes"},
            timeout=float(query.get("timeout", "30")),
            weight=int(query.get("weight", "1")),
        )


def parse_smtp_urls(value: str, *, helo_name: str = "") -> list[SMTPConfig]:
    """``SMTP_URL`` may list several relays separated by commas or whitespace."""
    return [
        dataclasses.replace(SMTPConfig.from_url(u), helo_name=helo_name)
        for u in value.replace(",", " ").split()
        if u
    ]


def open_smtp(config: SMTPConfig) -> smtplib.SMTP:
    """Connect, say EHLO, upgrade to TLS and log in as the configuration asks."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    # RFC 5321 4.1.4: EHLO with our fully qualified name (smtplib would send getfqdn()).
    name = config.helo_name or None
    if config.use_ssl:
        client = smtplib.SMTP_SSL(
            config.host, config.port, local_hostname=name, timeout=config.timeout, context=context
        )
    else:
        client = smtplib.SMTP(config.host, config.port, local_hostname=name, timeout=config.timeout)
    client.ehlo()
    if config.starttls:
        client.starttls(context=context)
        client.ehlo()
    if config.username:
        client.login(config.username, config.password or "")
    return client


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
        client = open_smtp(self.config)
        try:
            options: list[str] = []
            if not all(a.isascii() for a in (envelope_from, *recipients)):
                # RFC 6531: an internationalised mailbox goes only to a relay that offers
                # SMTPUTF8, with BODY=8BITMIME (its headers are raw UTF-8, RFC 6532).
                missing = [k for k in ("smtputf8", "8bitmime") if not client.has_extn(k)]
                if missing:
                    relay = f"{self.config.host}:{self.config.port}"
                    raise SMTPUTF8NotOffered(relay, " and ".join(m.upper() for m in missing))
                options += ["SMTPUTF8", "BODY=8BITMIME"]
            client.sendmail(envelope_from, recipients, message, mail_options=options)
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()


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
