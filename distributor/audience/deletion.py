"""Deleting a journalist never overlaps a freeze of a send's recipients.

``deliveries.journalist_id`` has no foreign key (migration 0029): its referential check was a
key-share lock on every recipient's journalist row, about a third of a freeze. What the key
did besides, a trigger on ``journalists`` does (a deleted journalist's delivery rows lose the
id), and what it guarded against, a journalist deleted (erased or merged away) while a freeze
reads them, this lock does: a freeze holds it shared until its transaction ends, a deletion
holds it exclusively. So an erasure either sees every row a freeze wrote for the journalist
(and anonymises them), or the freeze starts after the erasure and no longer finds the
journalist. PostgreSQL's transaction-level advisory locks; SQLite has one writer at a time.
The price: an erasure or a merge waits for any freeze running at that moment (a few seconds
per 100,000 recipients), where the key made it wait only for a freeze of that journalist.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Any fixed 64-bit number no other advisory lock of this database uses ("journal" in ASCII).
_LOCK_KEY = 0x6A6F75726E616C


def hold_off_deletions(session: Session) -> None:
    """Called by a freeze: no journalist is deleted until the caller's transaction ends."""
    _lock(session, "pg_advisory_xact_lock_shared")


def wait_for_freezes(session: Session) -> None:
    """Called before a journalist is deleted: waits for freezes running now, and keeps new
    ones waiting until the caller's transaction ends."""
    _lock(session, "pg_advisory_xact_lock")


def _lock(session: Session, function: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT {function}(:key)"), {"key": _LOCK_KEY})
