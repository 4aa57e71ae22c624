"""Can mail reach its relay? A quick check run at startup and on the staff pages.

Opening a connection and reading the server's greeting (RFC 5321 section 4.2: a ``220``
reply) is enough to catch the common mistakes: nothing listening on the port, a wrong host,
a firewall. It sends nothing and logs in to nothing, so it is cheap to repeat.
"""

from __future__ import annotations

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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def probe_relay(config: SMTPConfig, timeout: float = 3.0) -> RelayStatus:
    """Connect to one relay and read its greeting."""
    try:
        with socket.create_connection((config.host, config.port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if config.use_ssl:
                context = ssl.create_default_context()
                sock = context.wrap_socket(raw, server_hostname=config.host)
            sock.settimeout(timeout)
            greeting = sock.recv(512).decode("ascii", "replace").strip()
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RelayStatus(config.host, config.port, False, reason or type(exc).__name__)
    if not greeting.startswith("220"):
        first = greeting.splitlines()[0] if greeting else "no greeting"
        return RelayStatus(config.host, config.port, False, f"answered {first[:120]!r}")
    return RelayStatus(config.host, config.port, True, greeting.splitlines()[0][:120])


def check_relays(smtp_url: str, timeout: float = 3.0) -> list[RelayStatus]:
    """The status of every relay named in ``SMTP_URL``."""
    try:
        configs = parse_smtp_urls(smtp_url)
    except ValueError as exc:
        return [RelayStatus("?", 0, False, str(exc))]
    return [probe_relay(c, timeout) for c in configs]


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
    """The staff pages ask often; a result is reused for ``max_age`` seconds."""

    def __init__(self, smtp_url: str, *, max_age: float = 30.0, timeout: float = 1.5) -> None:
        self.smtp_url = smtp_url
        self.max_age = max_age
        self.timeout = timeout
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._statuses: list[RelayStatus] = []

    def problems(self) -> list[RelayStatus]:
        with self._lock:
            if time.monotonic() - self._checked_at > self.max_age:
                self._statuses = check_relays(self.smtp_url, self.timeout)
                self._checked_at = time.monotonic()
            return [s for s in self._statuses if not s.is_reachable]
