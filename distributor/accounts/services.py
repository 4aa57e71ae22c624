"""Staff account use cases. Functions take a session, may flush, never commit."""

from __future__ import annotations

import contextlib
import datetime as dt

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts import sessions
from distributor.accounts.models import Role, User
from distributor.accounts.passwords import MIN_LENGTH as MIN_PASSWORD_LENGTH
from distributor.accounts.passwords import check_password
from distributor.db import utcnow
from distributor.errors import Conflict, NotFound, ValidationFailed
from distributor.logs import security_event
from distributor.mail.addresses import InvalidAddress, normalise_address

_hasher = PasswordHasher()
# Verified against when the email is unknown, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
__all__ = ["MIN_PASSWORD_LENGTH"]


def normalise_email(email: str) -> str:
    """A staff member's address, checked like every other (``mail.addresses``)."""
    try:
        return normalise_address(email)
    except InvalidAddress as exc:
        raise ValidationFailed(f"Invalid email address: {exc}") from exc


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(session: Session, *, email: str, name: str, password: str, role: Role) -> User:
    """Create a staff account with an argon2id password hash."""
    address = normalise_email(email)
    check_password(password, user_inputs=[address, name])
    if find_user_by_email(session, address) is not None:
        raise Conflict(f"A user with the address {address} already exists")
    user = User(
        email=address,
        name=name.strip() or address,
        password_hash=_hasher.hash(password),
        role=role,
        is_active=True,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    max_failures: int = 5,
    lockout: dt.timedelta = dt.timedelta(minutes=15),
    ip: str | None = None,
    now: dt.datetime | None = None,
) -> User | None:
    """Return the active user with these credentials, or None; rehash outdated hashes.

    ``max_failures`` wrong passwords in a row lock the account for ``lockout`` whatever the
    client address (a per-IP limit alone lets a botnet guess one account's password). A locked
    account answers like a wrong password, and the hash is still verified (same timing).
    """
    now = now or utcnow()
    user = find_user_by_email(session, email)
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        security_event("login_failed", reason="unknown_account", ip=ip)
        return None
    try:
        _hasher.verify(user.password_hash, password)
        is_correct = True
    except (VerificationError, InvalidHashError):
        is_correct = False
    if user.locked_until is not None and user.locked_until > now:
        security_event("login_refused", reason="locked", user_id=user.id, ip=ip)
        return None
    if not is_correct:
        user.failed_login_count += 1
        if user.failed_login_count >= max_failures:
            user.locked_until = now + lockout
            user.failed_login_count = 0
            security_event("account_locked", user_id=user.id, ip=ip, until=user.locked_until)
        else:
            security_event("login_failed", reason="wrong_password", user_id=user.id, ip=ip)
        session.flush()
        return None
    if not user.is_active:
        security_event("login_refused", reason="disabled", user_id=user.id, ip=ip)
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_login_count = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user


def verify_password(user: User, password: str) -> bool:
    try:
        return bool(_hasher.verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def set_active(session: Session, email: str, *, is_active: bool) -> User:
    """Enable or disable an account; a disabled account cannot log in and is logged out."""
    user = find_user_by_email(session, email)
    if user is None:
        raise NotFound(f"No user with the address {email}")
    user.is_active = is_active
    if not is_active:
        sessions.revoke_all(session, user.id)
    security_event("account_enabled" if is_active else "account_disabled", user_id=user.id)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str, *, keep_session: str = "") -> None:
    """Set a new password and end every other login of ``user``."""
    check_password(password, user_inputs=[user.email, user.name])
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = utcnow()
    user.failed_login_count = 0
    user.locked_until = None
    sessions.revoke_all(session, user.id, keep=keep_session)
    security_event("password_changed", user_id=user.id)
    session.flush()


def change_password(
    session: Session, user: User, *, current: str, new: str, keep_session: str = ""
) -> None:
    """The user's own change: the current password first (OWASP ASVS V2.1.6)."""
    if not verify_password(user, current):
        security_event("password_change_refused", user_id=user.id, reason="wrong_current")
        raise ValidationFailed("The current password is not right")
    set_password(session, user, new, keep_session=keep_session)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))
