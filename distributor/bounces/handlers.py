"""The bounces package's receivers: bounce and complaint records of an erased journalist."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from distributor.bounces.services import forget_address
from distributor.signals import journalist_erased


def _erase(_journalist_id: int, *, session: Session, address: str, **_: Any) -> None:
    # Bounce and complaint records keep their counts but no longer name the person.
    forget_address(session, address)


def connect() -> None:
    """Connect the receivers (idempotent: blinker keeps one connection per receiver)."""
    journalist_erased.connect(_erase, weak=False)
