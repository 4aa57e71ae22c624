"""The delivery package's receivers: a journalist's deliveries when they are merged, erased
or download their data."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from distributor.delivery.models import Delivery
from distributor.releases.models import Release
from distributor.signals import journalist_erased, journalists_merged, personal_data_requested


def _merge(keep_id: int, *, session: Session, merged_id: int, **_: Any) -> int:
    # One delivery per release and journalist: where both got the same release, the kept
    # record's row stays and the duplicate's row is anonymised rather than moved.
    kept_releases = select(Delivery.release_id).where(Delivery.journalist_id == keep_id)
    moved_deliveries = cast(
        CursorResult[Any],
        session.execute(
            update(Delivery)
            .where(Delivery.journalist_id == merged_id, Delivery.release_id.not_in(kept_releases))
            .values(journalist_id=keep_id)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    session.execute(
        update(Delivery)
        .where(Delivery.journalist_id == merged_id)
        .values(journalist_id=None)
        .execution_options(synchronize_session=False)
    )
    return int(moved_deliveries or 0)


def _erase(journalist_id: int, *, session: Session, **_: Any) -> None:
    # The history stays for the release reports; it no longer names the person.
    session.execute(
        update(Delivery)
        .where(Delivery.journalist_id == journalist_id)
        .values(journalist_id=None, email=None)
        .execution_options(synchronize_session=False)
    )


def _personal_data(journalist_id: int, *, session: Session, **_: Any) -> dict[str, Any]:
    deliveries = session.execute(
        select(Delivery, Release.title)
        .join(Release, Release.id == Delivery.release_id)
        .where(Delivery.journalist_id == journalist_id)
        .order_by(Delivery.created_at)
    )
    return {
        "deliveries": [
            {"release": title, "status": d.status.value, "sent_at": _iso(d.sent_at)}
            for d, title in deliveries
        ]
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def connect() -> None:
    """Connect the receivers (idempotent: blinker keeps one connection per receiver)."""
    journalists_merged.connect(_merge, weak=False)
    journalist_erased.connect(_erase, weak=False)
    personal_data_requested.connect(_personal_data, weak=False)
