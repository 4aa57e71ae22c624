"""What staff see of a release's embargo rooms, and the rows the API and CSV exports give."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.delivery.models import Delivery
from distributor.embargo.models import (
    AccessEvent,
    AccessEventKind,
    EmbargoAccess,
    EmbargoStanding,
    EmbargoTerms,
    TermsAcceptance,
)


@dataclass
class RoomRow:
    access_id: int
    journalist_id: int
    name: str
    email: str
    status: str
    delivery_status: str
    granted_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_reason: str
    accepted_version: int | None = None
    accepted_at: dt.datetime | None = None
    entered_at: dt.datetime | None = None
    views: int = 0
    last_view_at: dt.datetime | None = None
    downloads: list[str] = field(default_factory=list)
    refusals: int = 0


def room_rows(session: Session, release_id: int) -> list[RoomRow]:
    """One row per journalist who received the release under embargo."""
    rows = session.execute(
        select(EmbargoAccess, Journalist, Delivery.status)
        .join(Journalist, Journalist.id == EmbargoAccess.journalist_id)
        .outerjoin(Delivery, Delivery.id == EmbargoAccess.delivery_id)
        .where(EmbargoAccess.release_id == release_id)
        .order_by(Journalist.email)
    ).all()
    result: dict[int, RoomRow] = {}
    for access, journalist, delivery_status in rows:
        result[access.id] = RoomRow(
            access_id=access.id,
            journalist_id=journalist.id,
            name=journalist.name,
            email=journalist.email,
            status=access.status.value,
            delivery_status=str(getattr(delivery_status, "value", delivery_status or "")),
            granted_at=access.created_at,
            revoked_at=access.revoked_at,
            revoked_reason=access.revoked_reason,
            entered_at=access.bound_at,
        )
    journalist_ids = [r.journalist_id for r in result.values()]
    latest: dict[int, tuple[int, dt.datetime]] = {}
    if journalist_ids:
        for journalist_id, version, accepted_at in session.execute(
            select(TermsAcceptance.journalist_id, EmbargoTerms.version, TermsAcceptance.accepted_at)
            .join(EmbargoTerms, EmbargoTerms.id == TermsAcceptance.terms_id)
            .where(TermsAcceptance.journalist_id.in_(journalist_ids))
        ):
            if journalist_id not in latest or version > latest[journalist_id][0]:
                latest[journalist_id] = (version, accepted_at)
    for row in result.values():
        if row.journalist_id in latest:
            row.accepted_version, row.accepted_at = latest[row.journalist_id]
    downloads: dict[int, list[str]] = defaultdict(list)
    for event in session.scalars(
        select(AccessEvent)
        .where(AccessEvent.release_id == release_id)
        .order_by(AccessEvent.occurred_at)
    ):
        held = result.get(event.access_id)
        if held is None:
            continue
        if event.kind is AccessEventKind.ROOM_VIEW:
            held.views += 1
            held.last_view_at = event.occurred_at
        elif event.kind in (AccessEventKind.DOWNLOAD, AccessEventKind.PHOTO):
            if event.detail not in downloads[event.access_id]:
                downloads[event.access_id].append(event.detail)
        elif event.kind is AccessEventKind.REFUSED:
            held.refusals += 1
    for access_id, names in downloads.items():
        result[access_id].downloads = names
    return list(result.values())


@dataclass(frozen=True)
class EventRow:
    occurred_at: dt.datetime
    release_id: int
    journalist_id: int
    email: str
    kind: str
    detail: str


def access_log(
    session: Session, *, release_id: int | None = None, journalist_id: int | None = None
) -> list[EventRow]:
    """Every view and download, oldest first (time and what; no IP address is stored)."""
    query = (
        select(AccessEvent, Journalist.email)
        .join(Journalist, Journalist.id == AccessEvent.journalist_id)
        .order_by(AccessEvent.occurred_at, AccessEvent.id)
    )
    if release_id is not None:
        query = query.where(AccessEvent.release_id == release_id)
    if journalist_id is not None:
        query = query.where(AccessEvent.journalist_id == journalist_id)
    return [
        EventRow(e.occurred_at, e.release_id, e.journalist_id, email, e.kind.value, e.detail)
        for e, email in session.execute(query)
    ]


@dataclass(frozen=True)
class AcceptanceRow:
    journalist_id: int
    email: str
    terms_version: int
    accepted_at: dt.datetime
    release_id: int | None


def acceptances(session: Session, journalist_id: int | None = None) -> list[AcceptanceRow]:
    """Evidence of acceptance: who, when, which version (and in which release's room)."""
    query = (
        select(TermsAcceptance, Journalist.email, EmbargoTerms.version)
        .join(Journalist, Journalist.id == TermsAcceptance.journalist_id)
        .join(EmbargoTerms, EmbargoTerms.id == TermsAcceptance.terms_id)
        .order_by(TermsAcceptance.accepted_at, TermsAcceptance.id)
    )
    if journalist_id is not None:
        query = query.where(TermsAcceptance.journalist_id == journalist_id)
    return [
        AcceptanceRow(a.journalist_id, email, version, a.accepted_at, a.release_id)
        for a, email, version in session.execute(query)
    ]


@dataclass(frozen=True)
class StandingRow:
    journalist_id: int
    email: str
    standing: str
    probation_until: dt.datetime | None
    reason: str
    updated_at: dt.datetime


def standings(session: Session) -> list[StandingRow]:
    """Every journalist whose embargo standing was ever set (the rest are allowed)."""
    return [
        StandingRow(
            s.journalist_id, email, s.standing.value, s.probation_until, s.reason, s.updated_at
        )
        for s, email in session.execute(
            select(EmbargoStanding, Journalist.email)
            .join(Journalist, Journalist.id == EmbargoStanding.journalist_id)
            .order_by(Journalist.email)
        )
    ]
