"""What an SMTP reply means for one delivery: sent, retry later, give up, or nobody knows.

Rules from RFC 5321 (reply classes), RFC 3463 (enhanced status codes) and RFC 1047 (a
connection lost after the final dot leaves the outcome unknown); see ``STANDARDS.md``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # transient: retry with backoff until the lifetime ends
    FAILED = "failed"  # permanent
    UNKNOWN = "unknown"  # the server may or may not have taken it: never resend by itself


class Stage(enum.StrEnum):
    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the DATA command (354 expected)
    DOT = "dot"  # the reply to the final "." of the message


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    is_suppressing: bool = False  # 5.1.x / 5.2.1: the address is bad; stop mailing it
    is_policy_rejection: bool = False  # 5.7.x: a problem with us (auth, reputation), not them
    is_domain_throttle: bool = False  # 421 / 4.7.x: slow down this recipient domain


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 status code in a reply text (``"5.1.1"``), if there is one."""
    match = _ENHANCED.search(text)
    return match.group(0) if match else None


def classify_reply(code: int, text: str, stage: Stage) -> Verdict:
    """Classify a reply the server actually gave."""
    if 200 <= code < 400:
        return Verdict(Outcome.SENT)
    status = enhanced_status(text) or ""
    if 400 <= code < 500:
        throttle = code == 421 or status.startswith("4.7.")
        return Verdict(Outcome.DEFERRED, is_domain_throttle=throttle)
    if code == 552 and stage is Stage.RCPT:
        # RFC 5321 4.5.3.1.10: "552 too many recipients / mailbox full" at RCPT is transient.
        return Verdict(Outcome.DEFERRED)
    if status.startswith("5.1.") or status == "5.2.1":
        return Verdict(Outcome.FAILED, is_suppressing=True)
    if status.startswith("5.7."):
        return Verdict(Outcome.FAILED, is_policy_rejection=True)
    if 500 <= code < 600:
        return Verdict(Outcome.FAILED)
    # Anything else is a protocol violation by the server: try again later.
    return Verdict(Outcome.DEFERRED)


def classify_connection_lost(stage: Stage) -> Verdict:
    """The connection broke (or timed out) while waiting at ``stage``."""
    if stage is Stage.DOT:
        return Verdict(Outcome.UNKNOWN)  # RFC 1047: the message may have been delivered
    return Verdict(Outcome.DEFERRED)


def retry_delay(attempts: int, base_seconds: int, max_seconds: int) -> int:
    """Seconds before the next try after ``attempts`` transient failures (doubling, capped)."""
    exponent = max(0, attempts - 1)
    if exponent > 30:
        return max_seconds
    return int(min(max_seconds, base_seconds * (2**exponent)))


@dataclass(frozen=True)
class RetryPlan:
    outcome: Outcome  # DEFERRED, or FAILED once the lifetime is over
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
        return RetryPlan(Outcome.FAILED, None)
    return RetryPlan(Outcome.DEFERRED, next_at)
