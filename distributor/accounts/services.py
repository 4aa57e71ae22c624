"""Staff account use cases. Functions take a session, may flush, never commit."""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts import sessions
from distributor.accounts.models import Role, User
from distributor.db import utcnow
from distributor.errors import Conflict, NotFound, ValidationFailed
from distributor.mail.addresses import InvalidAddress, normalise_address

_hasher = PasswordHasher()
# Verified against when the email is unknown, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD_LENGTH = 10


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
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
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


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Return the active user with these credentials, or None; rehash outdated hashes."""
    user = find_user_by_email(session, email)
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def set_active(session: Session, email: str, *, is_active: bool) -> User:
    """Enable or disable an account; a disabled account cannot log in and is logged out."""
    user = find_user_by_email(session, email)
    if user is None:
        raise NotFound(f"No user with the address {email}")
    user.is_active = is_active
    if not is_active:
        sessions.revoke_all(session, user.id)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str, *, keep_session: str = "") -> None:
    """Set a new password and end every other login of ``user``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = _hasher.hash(password)
    sessions.revoke_all(session, user.id, keep=keep_session)
    session.flush()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))
