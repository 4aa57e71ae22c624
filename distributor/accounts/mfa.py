"""TOTP two-factor authentication (RFC 6238) for staff, required of admins when
``REQUIRE_ADMIN_MFA`` is on. Functions take a session, may flush, never commit."""

from __future__ import annotations

import datetime as dt

import pyotp
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.db import utcnow
from distributor.errors import ValidationFailed
from distributor.logs import security_event

STEP_SECONDS = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    """The ``otpauth://`` URI authenticator apps read (Google Authenticator key-uri format)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step ``code`` belongs to, allowing one step of clock drift either way."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current, current - 1, current + 1):
        if totp.at(step * STEP_SECONDS) == code:
            return step
    return None


def enable(session: Session, user: User, secret: str, code: str) -> None:
    """Store ``secret`` once the user has shown a code from it."""
    step = _matching_step(secret, code, utcnow())
    if step is None:
        raise ValidationFailed("That code does not match. Check the time on your phone.")
    user.totp_secret = secret
    user.totp_last_step = step
    security_event("mfa_enabled", user_id=user.id)
    session.flush()


def verify(session: Session, user: User, code: str, *, now: dt.datetime | None = None) -> bool:
    """True for a current code not used before (a replayed code is refused)."""
    if not user.totp_secret:
        return False
    step = _matching_step(user.totp_secret, code, now or utcnow())
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        security_event("mfa_failed", user_id=user.id)
        return False
    user.totp_last_step = step
    session.flush()
    return True
