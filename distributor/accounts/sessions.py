"""Server-side session records for staff logins (OWASP ASVS V3, session management).

Functions take a session, may flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.accounts.models import StaffSession, User
from distributor.db import utcnow

# Writing last_seen_at on every request would turn every page view into a write; a minute's
# precision is plenty for an idle timeout counted in minutes.
TOUCH_INTERVAL = dt.timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(session: Session, user: User, *, user_agent: str = "") -> str:
    """Record a new login for ``user`` and return the random id its cookie carries."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        StaffSession(
            user_id=user.id,
            token_hash=_hash(token),
            user_agent=user_agent[:200],
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    return token


def find_live(
    session: Session,
    token: str,
    user_id: int,
    *,
    idle: dt.timedelta,
    absolute: dt.timedelta,
    now: dt.datetime | None = None,
) -> StaffSession | None:
    """The unrevoked, unexpired record for ``token`` belonging to ``user_id``; touches it."""
    if not token:
        return None
    now = now or utcnow()
    record = session.scalar(select(StaffSession).where(StaffSession.token_hash == _hash(token)))
    if record is None or record.user_id != user_id or record.revoked_at is not None:
        return None
    if now - record.last_seen_at > idle or now - record.created_at > absolute:
        record.revoked_at = now
        session.flush()
        return None
    if now - record.last_seen_at > TOUCH_INTERVAL:
        record.last_seen_at = now
        session.flush()
    return record


def revoke(session: Session, token: str) -> None:
    """End the login whose cookie carries ``token`` (logout)."""
    if token:
        session.execute(
            update(StaffSession)
            .where(StaffSession.token_hash == _hash(token), StaffSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def revoke_all(session: Session, user_id: int, *, keep: str = "") -> int:
    """End every login of ``user_id`` except the one carrying ``keep``; returns how many."""
    stmt = update(StaffSession).where(
        StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None)
    )
    if keep:
        stmt = stmt.where(StaffSession.token_hash != _hash(keep))
    result = session.execute(stmt.values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def live_sessions(session: Session, user_id: int) -> list[StaffSession]:
    return list(
        session.scalars(
            select(StaffSession)
            .where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None))
            .order_by(StaffSession.last_seen_at.desc())
        )
    )
