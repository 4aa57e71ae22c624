"""Can mail reach its relay, and what does it offer? A quick check run at startup and on
the staff pages.

Opening a connection and reading the server's greeting (RFC 5321 section 4.2: a ``220``
reply) is enough to catch the common mistakes: nothing listening on the port, a wrong host,
a firewall. The check then says EHLO (after STARTTLS when the relay is configured for it,
since a server may offer more inside TLS) to learn the relay's extensions, and QUITs: it
sends no message and logs in to nothing, so it is cheap to repeat. The extensions decide
whether an address with a non-ASCII local part can be accepted (SMTPUTF8, RFC 6531, which
needs 8BITMIME, RFC 6152, too): ``CachedRelayCheck.smtputf8_refusal``.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from distributor.mail.transport import SMTPConfig, parse_smtp_urls


@dataclass(frozen=True)
class RelayStatus:
    host: str
    port: int
    is_reachable: bool
    detail: str
    # EHLO keywords, upper case; None when the relay was not reached or EHLO failed.
    extensions: frozenset[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def offers(self, keyword: str) -> bool:
        return self.extensions is not None and keyword.upper() in self.extensions


def _read_greeting(sock: socket.socket) -> str:
    """The whole greeting (RFC 5321 4.2: it may span several ``220-`` lines)."""
    data = b""
    while True:
        chunk = sock.recv(512)
        data += chunk
        lines = data.split(b"\r\n")
        if not chunk or len(data) > 4096 or any(line[3:4] == b" " for line in lines[:-1]):
            return data.decode("ascii", "replace").strip()


def _extensions(config: SMTPConfig, timeout: float) -> frozenset[str] | None:
    """The relay's EHLO keywords (inside TLS when configured for STARTTLS); None on failure."""
    client: smtplib.SMTP
    name = config.helo_name or None
    try:
        if config.use_ssl:
            client = smtplib.SMTP_SSL(
                config.host,
                config.port,
                local_hostname=name,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(config.host, config.port, local_hostname=name, timeout=timeout)
        try:
            client.ehlo()
            if config.starttls and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if not client.does_esmtp:
                return frozenset()
            return frozenset(k.upper() for k in client.esmtp_features)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except (smtplib.SMTPException, OSError):
        return None


def probe_relay(config: SMTPConfig, timeout: float = 3.0) -> RelayStatus:
    """Connect to one relay, read its greeting, and ask for its extensions."""
    try:
        with socket.create_connection((config.host, config.port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if config.use_ssl:
                context = ssl.create_default_context()
                sock = context.wrap_socket(raw, server_hostname=config.host)
            sock.settimeout(timeout)
            greeting = _read_greeting(sock)
            if greeting.startswith("220"):
                # Polite: say goodbye before closing (no reply is awaited).
                sock.sendall(b"QUIT\r\n")
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RelayStatus(config.host, config.port, False, reason or type(exc).__name__)
    if not greeting.startswith("220"):
        first = greeting.splitlines()[0] if greeting else "no greeting"
        return RelayStatus(config.host, config.port, False, f"answered {first[:120]!r}")
    return RelayStatus(
        config.host,
        config.port,
        True,
        greeting.splitlines()[0][:120],
        _extensions(config, timeout),
    )


def check_relays(smtp_url: str, timeout: float = 3.0, *, helo_name: str = "") -> list[RelayStatus]:
    """The status of every relay named in ``SMTP_URL``."""
    try:
        configs = parse_smtp_urls(smtp_url, helo_name=helo_name)
    except ValueError as exc:
        return [RelayStatus("?", 0, False, str(exc))]
    return [probe_relay(c, timeout) for c in configs]


def smtputf8_refusal(statuses: list[RelayStatus]) -> str | None:
    """None when every relay offers SMTPUTF8 and 8BITMIME (RFC 6531 asks a
    server offering SMTPUTF8 to offer 8BITMIME, and its messages go with BODY=8BITMIME);
    else why not, naming the relay. A batch may pick any relay, so all must offer it."""
    for status in statuses:
        if not status.is_reachable or status.extensions is None:
            return f"our mail relay {status.address} cannot be reached to check that it can"
        missing = [k for k in ("SMTPUTF8", "8BITMIME") if not status.offers(k)]
        if missing:
            return f"our mail relay {status.address} does not offer {' and '.join(missing)}"
    return None if statuses else "no mail relay is configured"


def wait_for_relays(smtp_url: str, *, within: float, timeout: float = 2.0) -> list[RelayStatus]:
    """Check until every relay answers or ``within`` seconds pass (the dev inbox starts late)."""
    deadline = time.monotonic() + within
    while True:
        statuses = check_relays(smtp_url, timeout)
        if all(s.is_reachable for s in statuses) or time.monotonic() >= deadline:
            return statuses
        time.sleep(0.5)


def loud_warning(statuses: list[RelayStatus]) -> str:
    """A banner for the terminal; empty when every relay answered."""
    bad = [s for s in statuses if not s.is_reachable]
    if not bad:
        return ""
    lines = [f"MAIL CANNOT REACH ITS RELAY: {s.address}: {s.detail}" for s in bad]
    lines += [
        "Every mail (releases, test mails, confirmations) will fail until it can.",
        "Check SMTP_URL, or leave it unset to use the dev inbox on DEV_SMTP_PORT.",
    ]
    width = max(len(line) for line in lines) + 4
    bar = "!" * width
    return "\n".join(["", bar, *[f"! {line:<{width - 4}} !" for line in lines], bar, ""])


class CachedRelayCheck:
    """The staff pages and the address check ask often; a result is reused for ``max_age``
    seconds. The one place that knows what the configured relays offer right now."""

    def __init__(
        self,
        smtp_url: str,
        *,
        max_age: float = 30.0,
        timeout: float = 1.5,
        helo_name: str = "",
    ) -> None:
        self.smtp_url = smtp_url
        self.max_age = max_age
        self.timeout = timeout
        self.helo_name = helo_name
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._statuses: list[RelayStatus] = []

    def statuses(self) -> list[RelayStatus]:
        with self._lock:
            if time.monotonic() - self._checked_at > self.max_age:
                self._statuses = check_relays(self.smtp_url, self.timeout, helo_name=self.helo_name)
                self._checked_at = time.monotonic()
            return list(self._statuses)

    def problems(self) -> list[RelayStatus]:
        return [s for s in self.statuses() if not s.is_reachable]

    def smtputf8_refusal(self) -> str | None:
        """``addresses.RelayExtensions``: None while every relay offers SMTPUTF8."""
        return smtputf8_refusal(self.statuses())


def current_relay_check() -> CachedRelayCheck | None:
    """The running app's relay check (views and tasks pass it to the address check)."""
    from flask import current_app

    check: CachedRelayCheck | None = current_app.extensions.get("distributor.relay_check")
    return check
