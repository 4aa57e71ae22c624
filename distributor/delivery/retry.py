"""When to try a deferred message again, and when to give up (the retry lifetime).

What a reply *means* is decided in ``distributor.mail.outcomes``; this module only times the
next attempt: doubling from ``DELIVERY_RETRY_BASE_SECONDS`` up to ``DELIVERY_RETRY_MAX_SECONDS``
(Postfix doubles from 5 minutes too), until ``DELIVERY_LIFETIME_HOURS`` after the first
attempt (RFC 5321 4.5.4.1 asks for days; a press release is stale sooner).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def retry_delay(attempts: int, base_seconds: int, max_seconds: int) -> int:
    """Seconds before the next try after ``attempts`` transient failures (doubling, capped)."""
    exponent = max(0, attempts - 1)
    if exponent > 30:
        return max_seconds
    return int(min(max_seconds, base_seconds * (2**exponent)))


@dataclass(frozen=True)
class RetryPlan:
    is_expired: bool  # the lifetime is over: the row fails instead
    next_attempt_at: dt.datetime | None


def plan_retry(
    *,
    attempts: int,
    first_attempt_at: dt.datetime,
    now: dt.datetime,
    base_seconds: int,
    max_seconds: int,
    lifetime_hours: int,
) -> RetryPlan:
    """After a transient failure: when to try again, or give up if the lifetime is over."""
    next_at = now + dt.timedelta(seconds=retry_delay(attempts, base_seconds, max_seconds))
    if next_at >= first_attempt_at + dt.timedelta(hours=lifetime_hours):
        return RetryPlan(True, None)
    return RetryPlan(False, next_at)
