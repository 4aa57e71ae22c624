"""Can mail reach its relay? A quick check run at startup and on the staff pages.

It opens a session the way every sender does (``smtp_session.SMTPSession``: the greeting,
RFC 5321 section 4.2, EHLO, and STARTTLS with the relay's TLS policy from ``SMTP_URL``), so
the common mistakes show up before any mail: nothing listening on the port, a wrong host, a
firewall, and a certificate we do not trust (said as such, with the CA file used). It sends
nothing and logs in to nothing, so it is cheap to repeat.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from distributor.mail.smtp_session import (
    SMTPConfig,
    SMTPConnectionLost,
    SMTPRefused,
    SMTPSession,
    parse_smtp_urls,
)


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
    """Open a session with one relay (TLS included, no login) and say goodbye."""
    session = SMTPSession(config)
    try:
        session.connect(timeout, authenticate=False)
    except SMTPRefused as exc:
        first = str(exc.reply).splitlines()[0]
        return RelayStatus(config.host, config.port, False, f"answered {first[:200]!r}")
    except SMTPConnectionLost as exc:
        return RelayStatus(config.host, config.port, False, exc.reason or "connection lost")
    session.quit()
    tls = ", TLS certificate trusted" if config.uses_tls else ""
    return RelayStatus(config.host, config.port, True, f"{session.greeting[:120]}{tls}")


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
