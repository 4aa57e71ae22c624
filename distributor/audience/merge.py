"""Merging duplicate journalist records into the one kept, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.audience.deletion import wait_for_freezes
from distributor.audience.models import (
    JournalistMerge,
    SubscriptionStatus,
    media_list_members,
)
from distributor.audience.services import get_journalist
from distributor.db import utcnow
from distributor.errors import ValidationFailed
from distributor.signals import journalists_merged

_STATUS_RANK = {
    SubscriptionStatus.UNSUBSCRIBED: 0,
    SubscriptionStatus.PENDING: 1,
    SubscriptionStatus.CONFIRMED: 2,
}


def merge_journalists(
    session: Session, *, keep_id: int, duplicate_id: int, by: User | None = None
) -> JournalistMerge:
    """Fold ``duplicate_id`` into ``keep_id``: subscriptions, list memberships and deliveries move.

    Runs in the caller's transaction, so a failure leaves both records as they were. Where both
    follow a beat, an unsubscribe wins (we never re-subscribe someone by merging); otherwise the
    stronger status and its consent evidence are kept.
    """
    if keep_id == duplicate_id:
        raise ValidationFailed("Choose two different records to merge")
    wait_for_freezes(session)  # the duplicate is deleted below
    keep = get_journalist(session, keep_id)
    dup = get_journalist(session, duplicate_id)

    kept_subs = {s.beat_id: s for s in keep.subscriptions}
    moved_subs = 0
    for sub in list(dup.subscriptions):
        mine = kept_subs.get(sub.beat_id)
        if mine is None:
            dup.subscriptions.remove(sub)
            keep.subscriptions.append(sub)
            moved_subs += 1
            continue
        if SubscriptionStatus.UNSUBSCRIBED in (mine.status, sub.status):
            if mine.status != SubscriptionStatus.UNSUBSCRIBED:
                mine.status = SubscriptionStatus.UNSUBSCRIBED
                mine.unsubscribed_at = sub.unsubscribed_at or utcnow()
        elif _STATUS_RANK[sub.status] > _STATUS_RANK[mine.status]:
            for attr in (
                "status",
                "source",
                "consent_at",
                "consent_method",
                "consent_text_version",
                "consent_ip_hash",
                "confirmed_at",
            ):
                setattr(mine, attr, getattr(sub, attr))
        moved_subs += 1
    session.flush()

    kept_lists = set(
        session.scalars(
            select(media_list_members.c.media_list_id).where(
                media_list_members.c.journalist_id == keep.id
            )
        )
    )
    dup_lists = set(
        session.scalars(
            select(media_list_members.c.media_list_id).where(
                media_list_members.c.journalist_id == dup.id
            )
        )
    )
    new_lists = sorted(dup_lists - kept_lists)
    if new_lists:
        session.execute(
            insert(media_list_members),
            [{"media_list_id": ml, "journalist_id": keep.id} for ml in new_lists],
        )

    # Deliveries, embargo rooms and the rest move in their own packages' receivers; the one
    # that moves deliveries says how many.
    answers = journalists_merged.send(keep.id, session=session, merged_id=dup.id)
    moved_deliveries = sum(moved for _receiver, moved in answers if isinstance(moved, int))

    for attr in ("name", "role", "country", "language", "phone"):
        if not getattr(keep, attr) and getattr(dup, attr):
            setattr(keep, attr, getattr(dup, attr))
    if keep.outlet_id is None and dup.outlet_id is not None:
        keep.outlet_id = dup.outlet_id
    if dup.notes and dup.notes not in keep.notes:
        keep.notes = (keep.notes + "\n\n" + dup.notes).strip()
    keep.is_paused = keep.is_paused or dup.is_paused
    keep.is_tracking_allowed = keep.is_tracking_allowed and dup.is_tracking_allowed

    log = JournalistMerge(
        kept_id=keep.id,
        merged_journalist_id=dup.id,
        merged_email=dup.email,
        moved_subscriptions=moved_subs,
        moved_list_memberships=len(new_lists),
        moved_deliveries=moved_deliveries,
        merged_by_id=by.id if by is not None else None,
        merged_at=utcnow(),
    )
    session.add(log)
    session.delete(dup)
    session.flush()
    return log


def merges_into(session: Session, journalist_id: int) -> list[JournalistMerge]:
    return list(
        session.scalars(
            select(JournalistMerge)
            .where(JournalistMerge.kept_id == journalist_id)
            .order_by(JournalistMerge.merged_at.desc())
        )
    )
