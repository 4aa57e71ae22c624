"""Audience use cases for staff: suppressions, beats, outlets, journalists, media lists.

Functions take a session, may flush, never commit. Elsewhere in this package: subscribe and
confirm in ``consent.py``; the preference centre, data export and erasure in
``preferences.py``; merging duplicates in ``merge.py``; CSV import in ``imports.py`` (with
``dry_run.py`` and ``bulk.py``) and CSV reading and export in ``csv_io.py``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    any_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from distributor.accounts.models import Role, User
from distributor.audience.models import (
    Beat,
    Journalist,
    LawfulBasis,
    MediaList,
    Outlet,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionLift,
    SuppressionReason,
    media_list_members,
)
from distributor.db import utcnow
from distributor.errors import Conflict, Forbidden, NotFound, ValidationFailed
from distributor.mail import addresses

# -- addresses and suppression -----------------------------------------------------------------


def normalise_address(
    email: str,
    *,
    check_deliverability: bool = False,
    relay: addresses.RelayExtensions | None = None,
) -> str:
    """The lower-cased, validated form of ``email``; raises ``ValidationFailed``. A non-ASCII
    local part passes only while ``relay`` offers SMTPUTF8 (``mail.addresses``)."""
    try:
        return addresses.normalise_address(
            email, check_deliverability=check_deliverability, relay=relay
        )
    except addresses.InvalidAddress as exc:
        raise ValidationFailed(f"Invalid email address: {exc}") from exc


def address_hash(email: str) -> str:
    """sha256 of the lower-cased address: what the suppression list is keyed by."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def find_suppression(session: Session, email: str) -> Suppression | None:
    return session.scalar(
        select(Suppression).where(Suppression.address_hash == address_hash(email))
    )


def is_suppressed(session: Session, email: str) -> bool:
    """True when ``email`` must not be mailed (checked before every send)."""
    return bool(
        session.scalar(select(exists().where(Suppression.address_hash == address_hash(email))))
    )


def suppress(
    session: Session,
    email: str,
    reason: SuppressionReason,
    *,
    note: str = "",
    by: User | None = None,
) -> Suppression:
    """Add ``email`` to the suppression list; an existing entry is kept as it is (idempotent).

    A do-not-contact entered by staff wins over an automatic reason, since only admins lift it.
    A complaint or an unsubscribe from everything also ends the address's subscriptions, so
    lifting the entry alone can never resume mail: only a new double opt-in can.
    """
    if reason in ENDS_SUBSCRIPTIONS:
        end_subscriptions(session, email)
    existing = find_suppression(session, email)
    if existing is not None:
        if reason == SuppressionReason.DO_NOT_CONTACT and existing.reason != reason:
            existing.reason = reason
            existing.note = note or existing.note
            existing.created_by_id = by.id if by is not None else existing.created_by_id
            session.flush()
        return existing
    row = suppression_row(email, reason, note=note, by_id=by.id if by is not None else None)
    entry = Suppression(**{**row, "reason": reason}, created_at=utcnow())
    session.add(entry)
    session.flush()
    return entry


# Reasons whose whole rule in ``suppress`` is "add the address unless it is listed already":
# automatic, they neither end subscriptions nor override an entry. The send path, inside its
# fenced write on its own database connection, adds these with ``suppression_row`` and an
# insert that keeps an existing entry (``delivery.progress.ProgressWriter.suppress``).
ADD_IF_ABSENT = frozenset({SuppressionReason.HARD_BOUNCE, SuppressionReason.SOFT_BOUNCE})


def suppression_row(
    email: str, reason: SuppressionReason, *, note: str = "", by_id: int | None = None
) -> dict[str, Any]:
    """The columns of a new suppression entry for ``email`` (``reason`` as its stored value):
    keyed by the address hash, the address itself kept unless it was erased. The one
    definition, for ``suppress`` and for writers outside an ORM session."""
    return {
        "address_hash": address_hash(email),
        "address": None if reason == SuppressionReason.ERASED else email.strip().lower(),
        "reason": reason.value,
        "note": note,
        "created_by_id": by_id,
    }


# Reasons that speak for the person (they complained, they left) or for their mailbox (it does
# not exist): staff other than an admin with a stated reason must not overturn them. The
# journalist lifts a complaint or an unsubscribe themselves by a new double opt-in
# (``consent.confirm_subscription``). Only the soft-bounce score is any staff member's call.
ADMIN_ONLY_LIFT = frozenset(
    {
        SuppressionReason.DO_NOT_CONTACT,
        SuppressionReason.COMPLAINT,
        SuppressionReason.UNSUBSCRIBED_ALL,
        SuppressionReason.HARD_BOUNCE,
    }
)
ENDS_SUBSCRIPTIONS = frozenset({SuppressionReason.COMPLAINT, SuppressionReason.UNSUBSCRIBED_ALL})


def end_subscriptions(session: Session, email: str, *, now: dt.datetime | None = None) -> None:
    """Mark every subscription of the journalist at ``email`` unsubscribed."""
    journalist = find_journalist(session, email)
    if journalist is None:
        return
    now = now or utcnow()
    for sub in journalist.subscriptions:
        if sub.status != SubscriptionStatus.UNSUBSCRIBED:
            sub.status = SubscriptionStatus.UNSUBSCRIBED
            sub.unsubscribed_at = now
    session.flush()


def can_lift(entry: Suppression, user: User) -> bool:
    """Whether ``user`` may lift ``entry`` at all (the page hides the button otherwise)."""
    if entry.reason == SuppressionReason.ERASED:
        return False
    return entry.reason not in ADMIN_ONLY_LIFT or user.role == Role.ADMIN


def lift_suppression(session: Session, email: str, *, by: User, justification: str) -> None:
    """Remove ``email`` from the suppression list and record who lifted it and why."""
    entry = find_suppression(session, email)
    if entry is None:
        raise NotFound("That address is not on the suppression list")
    _lift(session, entry, by=by, justification=justification)


def lift_suppression_by_id(
    session: Session, suppression_id: int, *, by: User, justification: str
) -> None:
    entry = session.get(Suppression, suppression_id)
    if entry is None:
        raise NotFound("No such suppression")
    _lift(session, entry, by=by, justification=justification)


def _lift(session: Session, entry: Suppression, *, by: User, justification: str) -> None:
    if entry.reason == SuppressionReason.ERASED:
        raise Forbidden("An erased address stays suppressed until its owner subscribes again")
    if entry.reason in ADMIN_ONLY_LIFT and by.role != Role.ADMIN:
        label = entry.reason.value.replace("_", " ")
        raise Forbidden(f"Only an admin can lift a {label} entry")
    justification = justification.strip()
    if entry.reason in ADMIN_ONLY_LIFT and not justification:
        raise ValidationFailed("Say why this suppression is lifted; the reason is recorded")
    record_lift(session, entry, by=by, justification=justification)


def record_lift(
    session: Session, entry: Suppression, *, by: User | None, justification: str
) -> None:
    """Delete ``entry`` and keep a ``SuppressionLift`` row saying who lifted it and why."""
    session.add(
        SuppressionLift(
            address_hash=entry.address_hash,
            reason=entry.reason,
            suppressed_at=entry.created_at,
            lifted_by_id=by.id if by is not None else None,
            justification=justification[:1000],
            lifted_at=utcnow(),
        )
    )
    session.delete(entry)
    session.flush()


def list_suppressions(
    session: Session, *, q: str = "", reason: str = "", limit: int = 200
) -> list[Suppression]:
    stmt = select(Suppression).order_by(Suppression.created_at.desc()).limit(limit)
    if q:
        stmt = stmt.where(
            or_(
                Suppression.address.ilike(f"%{q.strip()}%"),
                Suppression.address_hash == address_hash(q),
            )
        )
    if reason:
        stmt = stmt.where(Suppression.reason == SuppressionReason(reason))
    return list(session.scalars(stmt))


# -- beats ---------------------------------------------------------------------------------------


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:140]


def list_beats(session: Session, *, public_only: bool = False) -> list[Beat]:
    stmt = select(Beat).order_by(Beat.name)
    if public_only:
        stmt = stmt.where(Beat.is_public.is_(True))
    return list(session.scalars(stmt))


def get_beat(session: Session, beat_id: int) -> Beat:
    beat = session.get(Beat, beat_id)
    if beat is None:
        raise NotFound("No such beat")
    return beat


def save_beat(
    session: Session,
    *,
    name: str,
    slug: str = "",
    description: str = "",
    is_public: bool = True,
    beat: Beat | None = None,
) -> Beat:
    """Create or update a beat; slugs are unique."""
    name = name.strip()
    if not name:
        raise ValidationFailed("A beat needs a name")
    slug = slugify(slug or name)
    if not slug:
        raise ValidationFailed("The slug needs at least one letter or digit")
    clash = session.scalar(select(Beat).where(Beat.slug == slug))
    if clash is not None and clash is not beat:
        raise Conflict(f"Another beat already uses the slug {slug!r}")
    if beat is None:
        beat = Beat(created_at=utcnow())
        session.add(beat)
    beat.name, beat.slug, beat.description, beat.is_public = name, slug, description, is_public
    session.flush()
    return beat


def beat_counts(session: Session) -> dict[int, int]:
    """Confirmed subscribers per beat id."""
    rows = session.execute(
        select(Subscription.beat_id, func.count())
        .where(Subscription.status == SubscriptionStatus.CONFIRMED)
        .group_by(Subscription.beat_id)
    )
    return {beat_id: count for beat_id, count in rows}


def delete_beat(session: Session, beat: Beat) -> None:
    session.delete(beat)
    session.flush()


# -- outlets and journalists ------------------------------------------------------------------


def get_or_create_outlet(session: Session, name: str) -> Outlet | None:
    name = name.strip()
    if not name:
        return None
    outlet = session.scalar(select(Outlet).where(func.lower(Outlet.name) == name.lower()))
    if outlet is None:
        outlet = Outlet(name=name[:200], website="", country="")
        session.add(outlet)
        session.flush()
    return outlet


def list_outlets(session: Session) -> list[Row[int, str]]:
    """Every outlet's id and name, for a filter menu (plain rows: thousands of outlets would
    cost more as ORM objects than the rest of the page)."""
    return list(session.execute(select(Outlet.id, Outlet.name).order_by(Outlet.name)).all())


def find_journalist(session: Session, email: str) -> Journalist | None:
    return session.scalar(
        select(Journalist).where(Journalist.email_normalized == email.strip().lower())
    )


def get_journalist(session: Session, journalist_id: int) -> Journalist:
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        raise NotFound("No such journalist")
    return journalist


@dataclass
class JournalistDetails:
    email: str
    name: str = ""
    outlet: str = ""
    role: str = ""
    country: str = ""
    language: str = ""
    phone: str = ""
    notes: str = ""
    lawful_basis: LawfulBasis = LawfulBasis.LEGITIMATE_INTEREST


def save_journalist(
    session: Session,
    details: JournalistDetails,
    *,
    journalist: Journalist | None = None,
    relay: addresses.RelayExtensions | None = None,
) -> Journalist:
    """Create or update a journalist record entered by staff."""
    address = normalise_address(details.email, relay=relay)
    clash = find_journalist(session, address)
    if clash is not None and clash is not journalist:
        raise Conflict(f"{address} is already in the audience (merge the records instead)")
    if journalist is None:
        journalist = Journalist(created_at=utcnow())
        session.add(journalist)
    journalist.email = address
    journalist.email_normalized = address
    journalist.name = details.name.strip()[:200]
    journalist.outlet = get_or_create_outlet(session, details.outlet)
    journalist.role = details.role.strip()[:120]
    journalist.country = details.country.strip().upper()[:2]
    journalist.language = details.language.strip()[:12]
    journalist.phone = details.phone.strip()[:60]
    journalist.notes = details.notes
    journalist.lawful_basis = details.lawful_basis
    session.flush()
    return journalist


JOURNALIST_STATUSES = ("confirmed", "pending", "unsubscribed", "suppressed", "paused")


_LIST_ORDER = (Journalist.name, Journalist.email_normalized)


def journalist_query(
    *,
    q: str = "",
    beat_id: int | None = None,
    outlet_id: int | None = None,
    status: str = "",
    engagement: ColumnElement[bool] | None = None,
) -> Select[Any]:
    """Staff search: free text over address/name/outlet, filtered by beat, outlet and status.

    ``engagement`` is a condition on ``Journalist`` (``reports.engagement`` builds them).
    """
    stmt = select(Journalist).order_by(*_LIST_ORDER)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        stmt = stmt.outerjoin(Outlet, Journalist.outlet_id == Outlet.id).where(
            or_(
                Journalist.email_normalized.like(like),
                func.lower(Journalist.name).like(like),
                func.lower(Outlet.name).like(like),
            )
        )
    if outlet_id:
        stmt = stmt.where(Journalist.outlet_id == outlet_id)
    sub_status = {
        "confirmed": SubscriptionStatus.CONFIRMED,
        "pending": SubscriptionStatus.PENDING,
        "unsubscribed": SubscriptionStatus.UNSUBSCRIBED,
    }.get(status)
    if beat_id or sub_status is not None:
        cond = Subscription.journalist_id == Journalist.id
        if beat_id:
            cond = cond & (Subscription.beat_id == beat_id)
        if sub_status is not None:
            cond = cond & (Subscription.status == sub_status)
        stmt = stmt.where(exists().where(cond))
    if status == "suppressed":
        # Suppressions keep the lower-cased address until it is erased, and erased
        # journalists no longer exist, so matching on the address is exact here.
        stmt = stmt.where(
            Journalist.email_normalized.in_(
                select(Suppression.address).where(Suppression.address.is_not(None))
            )
        )
    elif status == "paused":
        stmt = stmt.where(Journalist.is_paused.is_(True))
    if engagement is not None:
        stmt = stmt.where(engagement)
    return stmt


# The list counts its matches exactly up to this many; past it the total is an estimate.
EXACT_TOTAL_LIMIT = 10_000


@dataclass(frozen=True)
class JournalistPage:
    """One page of the staff list, in (name, address) order, with its neighbours' cursors.

    ``total`` is exact up to ``EXACT_TOTAL_LIMIT``; above it ``total_is_estimate`` is set and
    ``total`` is the planner's estimate (PostgreSQL) or the limit itself ("more than").
    """

    journalists: list[Journalist]
    total: int
    total_is_estimate: bool
    next_after: int | None  # the last journalist's id, when a later page exists
    previous_before: int | None  # the first journalist's id, when an earlier page exists

    @property
    def total_text(self) -> str:
        if not self.total_is_estimate:
            return f"{self.total:,} found"
        if self.total > EXACT_TOTAL_LIMIT:
            return f"about {self.total:,} found (estimated)"
        return f"more than {EXACT_TOTAL_LIMIT:,} found"


def search_journalists(
    session: Session,
    *,
    q: str = "",
    beat_id: int | None = None,
    outlet_id: int | None = None,
    status: str = "",
    engagement: ColumnElement[bool] | None = None,
    engagement_every_match: ColumnElement[bool] | None = None,
    after: int | None = None,
    before: int | None = None,
    per_page: int = 50,
) -> JournalistPage:
    """One page of journalists matching the filters, by keyset: the page after journalist
    ``after`` (or before ``before``) in (name, address) order, never OFFSET, so a late page
    costs what the first one does (an index walk from the cursor).

    ``engagement_every_match``, when given, is ``engagement`` in the form cheaper for reading
    every match (the ids counted below); ``engagement`` serves the walk of the name index.
    A cursor naming a journalist who no longer exists starts the list again.
    """
    query = functools.partial(
        journalist_query, q=q, beat_id=beat_id, outlet_id=outlet_id, status=status
    )
    stmt = query(engagement=engagement)
    match_stmt = (
        stmt if engagement_every_match is None else query(engagement=engagement_every_match)
    )
    key = tuple_(Journalist.name, Journalist.email_normalized)
    # Up to EXACT_TOTAL_LIMIT matches are fetched as ids first (the exact total) and a page is
    # sorted from them: otherwise the planner may walk the name index probing each row against
    # the filters, which is fast only when matches are common and evenly spread.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and (beat_id or engagement is not None):
        # The filters meet as a hash join of each filter's journalists (e.g. 50,000 on a
        # beat against 110,000 with a human open at a million): one hash built in memory
        # (work_mem's 4 MB default spills it to disk), once (parallel workers would each
        # build the same one).
        session.execute(text("SET LOCAL work_mem = '32MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    match_ids = list(
        session.scalars(
            match_stmt.order_by(None).with_only_columns(Journalist.id).limit(EXACT_TOTAL_LIMIT + 1)
        )
    )
    few = len(match_ids) <= EXACT_TOTAL_LIMIT
    if few:
        among = (
            Journalist.id == any_(bindparam("match_ids", match_ids, type_=ARRAY(Integer)))
            if dialect == "postgresql"
            else Journalist.id.in_(match_ids)
        )
        # Sorted by the same values through expressions no index provides ("|| ''" keeps
        # the text and its collation), so the planner fetches the few ids and sorts them
        # instead of walking the name index in the hope of meeting them early.
        stmt = select(Journalist).where(among).order_by(*(c + "" for c in _LIST_ORDER))
    cursor_id = before if before is not None else after
    cursor = None
    if cursor_id is not None:
        cursor = session.execute(
            select(Journalist.name, Journalist.email_normalized).where(Journalist.id == cursor_id)
        ).first()
    backwards = cursor is not None and before is not None
    page_stmt = stmt
    if cursor is not None:
        at = tuple_(cursor[0], cursor[1])
        page_stmt = stmt.where(key < at) if backwards else stmt.where(key > at)
    if backwards:
        order = (c + "" for c in _LIST_ORDER) if few else _LIST_ORDER
        page_stmt = page_stmt.order_by(None).order_by(*(c.desc() for c in order))
    rows = list(
        session.scalars(
            page_stmt.options(selectinload(Journalist.subscriptions)).limit(per_page + 1)
        )
    )
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    # Is there anything on the other side of the page? One row of the index says.
    if backwards:
        has_next, has_previous = cursor is not None, more
    else:
        has_next, has_previous = (
            more,
            cursor is not None and bool(rows) and _exists_before(session, stmt, key, rows[0]),
        )
    total, estimated = (len(match_ids), False) if few else (_estimate(session, stmt), True)
    return JournalistPage(
        journalists=rows,
        total=total,
        total_is_estimate=estimated,
        next_after=rows[-1].id if rows and has_next else None,
        previous_before=rows[0].id if rows and has_previous else None,
    )


def _exists_before(session: Session, stmt: Select[Any], key: Any, first: Journalist) -> bool:
    earlier = stmt.where(key < tuple_(first.name, first.email_normalized))
    return bool(
        session.scalar(select(earlier.order_by(None).with_only_columns(Journalist.id).exists()))
    )


def _estimate(session: Session, stmt: Select[Any]) -> int:
    """The planner's estimate of the rows ``stmt`` matches, when there are more than
    ``EXACT_TOTAL_LIMIT`` (on SQLite, the limit itself: "more than")."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return EXACT_TOTAL_LIMIT
    # Bound as parameters, like the query itself: a figure to label "about", never to page by.
    compiled = stmt.order_by(None).with_only_columns(Journalist.id).compile(dialect=dialect)
    plan = (
        session.connection()
        .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
        .scalar_one()
    )
    return max(int(plan[0]["Plan"]["Plan Rows"]), EXACT_TOTAL_LIMIT + 1)


# -- media lists ---------------------------------------------------------------------------------


def list_media_lists(session: Session) -> list[tuple[MediaList, int]]:
    counts = (
        select(media_list_members.c.media_list_id, func.count().label("n"))
        .group_by(media_list_members.c.media_list_id)
        .subquery()
    )
    rows = session.execute(
        select(MediaList, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.media_list_id == MediaList.id)
        .order_by(MediaList.name)
    )
    return [(media_list, int(n)) for media_list, n in rows]


def get_media_list(session: Session, media_list_id: int) -> MediaList:
    media_list = session.get(MediaList, media_list_id)
    if media_list is None:
        raise NotFound("No such media list")
    return media_list


def save_media_list(
    session: Session, *, name: str, description: str = "", media_list: MediaList | None = None
) -> MediaList:
    name = name.strip()
    if not name:
        raise ValidationFailed("A media list needs a name")
    clash = session.scalar(select(MediaList).where(MediaList.name == name))
    if clash is not None and clash is not media_list:
        raise Conflict(f"There is already a media list called {name!r}")
    if media_list is None:
        media_list = MediaList(created_at=utcnow())
        session.add(media_list)
    media_list.name, media_list.description = name, description
    session.flush()
    return media_list


def delete_media_list(session: Session, media_list: MediaList) -> None:
    session.delete(media_list)
    session.flush()


def add_to_media_list(session: Session, media_list: MediaList, emails: list[str]) -> list[str]:
    """Add the journalists with these addresses; returns the addresses not found."""
    missing: list[str] = []
    for raw in emails:
        if not raw.strip():
            continue
        journalist = find_journalist(session, raw)
        if journalist is None:
            missing.append(raw.strip())
            continue
        if journalist not in media_list.journalists:
            media_list.journalists.append(journalist)
    session.flush()
    return missing


def remove_from_media_list(session: Session, media_list: MediaList, journalist_id: int) -> None:
    session.execute(
        delete(media_list_members).where(
            media_list_members.c.media_list_id == media_list.id,
            media_list_members.c.journalist_id == journalist_id,
        )
    )
    session.expire(media_list, ["journalists"])


def media_lists_of(session: Session, journalist_id: int) -> list[MediaList]:
    return list(
        session.scalars(
            select(MediaList)
            .join(media_list_members, media_list_members.c.media_list_id == MediaList.id)
            .where(media_list_members.c.journalist_id == journalist_id)
            .order_by(MediaList.name)
        )
    )


def suppressed_addresses(session: Session, emails: list[str]) -> set[str]:
    """The addresses among ``emails`` that are on the suppression list."""
    by_hash = {address_hash(e): e for e in emails}
    if not by_hash:
        return set()
    found = session.scalars(
        select(Suppression.address_hash).where(Suppression.address_hash.in_(list(by_hash)))
    )
    return {by_hash[h] for h in found}
