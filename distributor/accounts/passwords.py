"""What a staff password must be: strong by zxcvbn's estimate and not a known breached one.

NIST SP 800-63B 5.1.1.2 asks verifiers to refuse passwords found in breach corpora and common
lists, and to drop composition rules in favour of such checks; OWASP ASVS V2.1 likewise. The
breach list is the 30,000 most common passwords from leaked password dumps, as shipped inside
the zxcvbn package (``frequency_lists["passwords"]``), so the check works offline and sends
nothing about the password anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from distributor.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 1000
MIN_SCORE = 3  # zxcvbn 0-4: 3 is "safely unguessable: moderate protection from offline attack"
# zxcvbn's cost grows with length; the first characters decide any weakness it can find.
_SCORED_PREFIX = 100


@lru_cache(maxsize=1)
def _breached() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def is_breached(password: str) -> bool:
    """True when ``password`` is on the shipped list of passwords seen in breaches."""
    return password.lower() in _breached() or password.strip().lower() in _breached()


def check_password(password: str, *, user_inputs: Iterable[str] = ()) -> None:
    """Raise ``ValidationFailed`` with advice unless ``password`` is acceptable."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"Password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"Password must be at most {MAX_LENGTH} characters")
    if is_breached(password):
        raise ValidationFailed(
            "That password appears in lists of passwords leaked in data breaches; choose another"
        )
    inputs = [word for value in user_inputs for word in value.replace("@", " ").split() if word]
    result = zxcvbn(password[:_SCORED_PREFIX], user_inputs=inputs)
    if result["score"] < MIN_SCORE:
        advice = result["feedback"].get("warning") or "It would be guessed too easily"
        suggestions = " ".join(result["feedback"].get("suggestions") or [])
        raise ValidationFailed(
            f"Password too weak: {advice.rstrip('.')}. {suggestions} "
            "A few unrelated words make a strong one."
        )
