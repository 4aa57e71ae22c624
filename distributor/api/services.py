"""Per-user API tokens: minted once, stored as a SHA-256 digest, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.api.models import ApiToken
from distributor.db import utcnow
from distributor.errors import NotFound, ValidationFailed

TOKEN_PREFIX = "dst_"  # noqa: S105 - a public marker, not a secret
MAX_TOKENS_PER_USER = 20


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Mint a token for ``user``; returns the row and the secret (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 120:
        raise ValidationFailed("Give the token a name of 1 to 120 characters.")
    active = session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    if len(active) >= MAX_TOKENS_PER_USER:
        raise ValidationFailed(f"At most {MAX_TOKENS_PER_USER} active tokens per user.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id, name=name, token_hash=token_digest(secret), prefix=secret[:12]
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens (idempotent)."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def authenticate(session: Session, authorization: str) -> User | None:
    """The active user behind an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    digest = token_digest(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # The lookup is by digest; compare again in constant time for good measure.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now  # at most one write a minute per token
    return token.user
