"""Sensible sending limits for the relays press offices use (``SMTP_RELAY_PROFILE``).

Each value is what the provider documents, or where it documents nothing, a conservative
starting point that the adaptive relay state (``distributor/delivery/relaystate.py``) lowers
further when the relay refuses. Explicit ``SMTP_RELAY_*`` settings override a profile. The
table with sources is in docs/RELAYS.md.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# name -> (connections, rate per second (0 = none of ours), messages per connection (0 = none))
PROFILES: Final = MappingProxyType(
    {
        # Amazon SES: the account's "maximum send rate" (14/s for a new production account,
        # 1/s in the sandbox) is enforced with "454 Throttling failure: Maximum sending rate
        # exceeded" after DATA; set SMTP_RELAY_RATE to your account's figure.
        "ses": (10, 14, 0),
        # SendGrid SMTP: up to 5,000 messages per connection and 10,000 concurrent
        # connections from one server; no per-second SMTP rate is published.
        "sendgrid": (20, 0, 5000),
        # Mailgun: no published SMTP connection or rate limit; plan quotas apply.
        "mailgun": (10, 0, 0),
        # Postmark: no published SMTP connection limit; it asks bulk senders to use its
        # Broadcast stream. A modest start.
        "postmark": (5, 0, 0),
        # Self-hosted Postfix: smtpd_client_connection_count_limit defaults to 50 (half of
        # default_process_limit 100); anvil's message and recipient rate limits are off (0)
        # unless configured. Stay well inside the connection limit.
        "postfix": (20, 0, 0),
    }
)


def profile(name: str) -> tuple[int, int, int]:
    """The limits of a named profile."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown relay profile {name!r}; one of: {', '.join(sorted(PROFILES))}"
        ) from None
