"""Storing and classifying tracking events, and resolving click redirects."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.db import utcnow
from distributor.delivery.models import Delivery
from distributor.organisation.models import Organisation
from distributor.tracking import classify
from distributor.tracking.buffer import RawEvent
from distributor.tracking.models import EventKind, TrackedLink, TrackingEvent

MAX_ID = 2**31 - 1
_TOKEN = re.compile(r"^[A-Za-z0-9_.=-]{1,64}$")


def is_plausible_token(token: str) -> bool:
    return bool(_TOKEN.match(token))


class ClickCache:
    """Per-process memory of resolved (token, link id) pairs: both never change once sent.

    A scanner that opens every link of a message, and a reader who clicks twice, cost one
    query instead of several. Only hits are kept (an unknown pair may be registered later).
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._urls: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> str | None:
        with self._lock:
            url = self._urls.get(key)
            if url is not None:
                self._urls.move_to_end(key)
            return url

    def put(self, key: tuple[str, int], url: str) -> None:
        with self._lock:
            self._urls[key] = url
            if len(self._urls) > self.size:
                self._urls.popitem(last=False)


def resolve_click(
    session: Session, token: str, link_id: int, cache: ClickCache | None = None
) -> str | None:
    """The URL registered for this delivery's release under ``link_id``, or None."""
    if not is_plausible_token(token) or not 0 < link_id <= MAX_ID:
        return None
    if cache is not None and (hit := cache.get((token, link_id))) is not None:
        return hit
    url: str | None = session.scalar(
        select(TrackedLink.url)
        .join(Delivery, Delivery.release_id == TrackedLink.release_id)
        .where(Delivery.verp_token == token, TrackedLink.id == link_id)
    )
    if url is not None and cache is not None:
        cache.put((token, link_id), url)
    return url


def is_tracking_enabled(session: Session) -> bool:
    """The organisation-wide switch (on until an admin turns it off)."""
    enabled = session.scalar(
        select(Organisation.is_tracking_enabled).order_by(Organisation.id).limit(1)
    )
    return True if enabled is None else bool(enabled)


def store_events(session: Session, events: Iterable[RawEvent]) -> int:
    """Write raw events as classified rows; drop what tracking may not record. Count inserted."""
    batch = [e for e in events if is_plausible_token(e.token) and e.kind in ("open", "click")]
    if not batch or not is_tracking_enabled(session):
        return 0
    tokens = {e.token for e in batch}
    deliveries = {
        row.verp_token: row
        for row in session.execute(
            select(
                Delivery.id,
                Delivery.verp_token,
                Delivery.release_id,
                Delivery.journalist_id,
                Delivery.sent_at,
            )
            .join(Journalist, Journalist.id == Delivery.journalist_id)
            .where(Delivery.verp_token.in_(tokens), Journalist.is_tracking_allowed.is_(True))
        )
    }
    link_ids = {e.link_id for e in batch if e.link_id is not None and 0 < e.link_id <= MAX_ID}
    link_release = (
        dict(
            session.execute(
                select(TrackedLink.id, TrackedLink.release_id).where(TrackedLink.id.in_(link_ids))
            ).all()
        )
        if link_ids
        else {}
    )
    rows = []
    for event in batch:
        delivery = deliveries.get(event.token)
        if delivery is None:
            continue  # unknown token, or a journalist who asked not to be tracked
        occurred = event.occurred
        if event.kind == "click":
            if event.link_id is None or link_release.get(event.link_id) != delivery.release_id:
                continue
            verdict = classify.classify_click(
                user_agent=event.user_agent,
                method=event.method,
                occurred_at=occurred,
                sent_at=delivery.sent_at,
            )
        else:
            verdict = classify.classify_open(
                user_agent=event.user_agent,
                method=event.method,
                occurred_at=occurred,
                sent_at=delivery.sent_at,
            )
        rows.append(
            {
                "event_uid": event.uid,
                "delivery_id": delivery.id,
                "release_id": delivery.release_id,
                "journalist_id": delivery.journalist_id,
                "link_id": event.link_id if event.kind == "click" else None,
                "kind": EventKind(event.kind),
                "occurred_at": occurred,
                "method": event.method.upper()[:8],
                "user_agent": event.user_agent[:300],
                "is_machine": verdict.is_machine,
                "machine_reason": verdict.reason,
                "classified_at": None,
                "created_at": utcnow(),
            }
        )
    if not rows:
        return 0
    # A replayed batch (flush crashed after commit, before clearing Redis) inserts nothing twice.
    if session.get_bind().dialect.name == "postgresql":
        return _insert_unnest(session, rows)
    stmt = sqlite.insert(TrackingEvent).on_conflict_do_nothing(index_elements=["event_uid"])
    inserted = 0
    for start in range(0, len(rows), 1000):
        result = session.execute(stmt.returning(TrackingEvent.id), rows[start : start + 1000])
        inserted += len(result.all())
    return inserted


# One statement for the whole batch, its text the same every time: a multi-row VALUES list has
# thirteen placeholders a row, and psycopg parses such a query anew for every batch (it caches
# only short ones), which cost more CPU than everything else the flush does.
_INSERT_UNNEST = text(
    """
    INSERT INTO tracking_events (event_uid, delivery_id, release_id, journalist_id, link_id,
        kind, occurred_at, method, user_agent, is_machine, machine_reason, classified_at,
        created_at)
    SELECT uid, delivery, rel, journalist, link, kind, occurred, method, agent, machine, reason,
        NULL, :created_at
    FROM unnest(CAST(:uid AS text[]), CAST(:delivery AS bigint[]), CAST(:rel AS bigint[]),
        CAST(:journalist AS bigint[]), CAST(:link AS bigint[]), CAST(:kind AS text[]),
        CAST(:occurred AS timestamptz[]), CAST(:method AS text[]), CAST(:agent AS text[]),
        CAST(:machine AS boolean[]), CAST(:reason AS text[]))
        AS batch(uid, delivery, rel, journalist, link, kind, occurred, method, agent, machine,
            reason)
    ON CONFLICT (event_uid) DO NOTHING
    RETURNING id
    """
)


def _insert_unnest(session: Session, rows: list[dict[str, Any]]) -> int:
    """PostgreSQL: insert the rows with arrays, one statement; count those inserted."""
    result = session.execute(
        _INSERT_UNNEST,
        {
            "uid": [r["event_uid"] for r in rows],
            "delivery": [r["delivery_id"] for r in rows],
            "rel": [r["release_id"] for r in rows],
            "journalist": [r["journalist_id"] for r in rows],
            "link": [r["link_id"] for r in rows],
            "kind": [r["kind"].value for r in rows],
            "occurred": [r["occurred_at"].astimezone(dt.UTC) for r in rows],
            "method": [r["method"] for r in rows],
            "agent": [r["user_agent"] for r in rows],
            "machine": [r["is_machine"] for r in rows],
            "reason": [r["machine_reason"] for r in rows],
            "created_at": rows[0]["created_at"],
        },
    )
    return len(result.all())


def classify_pending(session: Session, *, now: dt.datetime | None = None) -> int:
    """Apply the whole-message rules to events not yet seen by a flush; count them."""
    now = now or utcnow()
    pending_deliveries = list(
        session.scalars(
            select(TrackingEvent.delivery_id)
            .where(TrackingEvent.classified_at.is_(None), TrackingEvent.kind == EventKind.CLICK)
            .distinct()
        )
    )
    for chunk_start in range(0, len(pending_deliveries), 500):
        chunk = pending_deliveries[chunk_start : chunk_start + 500]
        _flag_all_link_bursts(session, chunk)
    result = session.execute(
        update(TrackingEvent)
        .where(TrackingEvent.classified_at.is_(None))
        .values(classified_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _flag_all_link_bursts(session: Session, delivery_ids: list[int]) -> None:
    clicks: dict[int, list[classify.ClickSeen]] = defaultdict(list)
    releases: dict[int, int] = {}
    for event_id, delivery_id, release_id, link_id, occurred_at in session.execute(
        select(
            TrackingEvent.id,
            TrackingEvent.delivery_id,
            TrackingEvent.release_id,
            TrackingEvent.link_id,
            TrackingEvent.occurred_at,
        ).where(TrackingEvent.delivery_id.in_(delivery_ids), TrackingEvent.kind == EventKind.CLICK)
    ):
        clicks[delivery_id].append(classify.ClickSeen(event_id, link_id, occurred_at))
        releases[delivery_id] = release_id
    link_counts = dict(
        session.execute(
            select(TrackedLink.release_id, func.count(TrackedLink.id))
            .where(TrackedLink.release_id.in_(set(releases.values())))
            .group_by(TrackedLink.release_id)
        ).all()
    )
    flagged: set[int] = set()
    for delivery_id, seen in clicks.items():
        flagged |= classify.all_links_burst(seen, link_counts.get(releases[delivery_id], 0))
    if flagged:
        session.execute(
            update(TrackingEvent)
            .where(TrackingEvent.id.in_(flagged), TrackingEvent.is_machine.is_(False))
            .values(is_machine=True, machine_reason=classify.ALL_LINKS)
            .execution_options(synchronize_session=False)
        )
