"""Can mail reach its relay, and what does it offer? A quick check run at startup and on
the staff pages.

It opens a session the way every sender does (``smtp_session.SMTPSession``: the greeting,
RFC 5321 section 4.2, EHLO, and STARTTLS with the relay's TLS policy from ``SMTP_URL``), so
the common mistakes show up before any mail: nothing listening on the port, a wrong host, a
firewall, and a certificate we do not trust (said as such, with the CA file used). It sends
nothing and logs in to nothing, so it is cheap to repeat. The extensions its EHLO
learns decide whether an address with a non-ASCII local part can be accepted (SMTPUTF8,
RFC 6531, which needs 8BITMIME, RFC 6152, too): ``CachedRelayCheck.smtputf8_refusal``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from distributor.mail.addresses import missing_for_utf8
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
    # EHLO keywords, upper case; None when the relay was not reached or EHLO failed.
    extensions: frozenset[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def offers(self, keyword: str) -> bool:
        return self.extensions is not None and keyword.upper() in self.extensions


def probe_relay(config: SMTPConfig, timeout: float = 3.0) -> RelayStatus:
    """Open a session with one relay (TLS included, no login), learn its extensions and
    say goodbye."""
    session = SMTPSession(config)
    try:
        session.connect(timeout, authenticate=False)
    except SMTPRefused as exc:
        first = str(exc.reply).splitlines()[0]
        return RelayStatus(config.host, config.port, False, f"answered {first[:200]!r}")
    except SMTPConnectionLost as exc:
        return RelayStatus(config.host, config.port, False, exc.reason or "connection lost")
    extensions = frozenset(session.extensions)
    session.quit()
    tls = ", TLS certificate trusted" if config.uses_tls else ""
    greeting = session.greeting[:120]
    return RelayStatus(config.host, config.port, True, f"{greeting}{tls}", extensions)


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
        missing = missing_for_utf8(status.extensions or frozenset())
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
