"""Rights over time: the sweep that expires them and what a send may carry.

``services.is_available`` decides whether an asset may be shown; this module makes an ended
right permanent (state and history) and tells the pre-send checklist what is wrong.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.errors import ValidationFailed
from distributor.media.models import MediaAsset, RightsState
from distributor.media.services import is_available, move_rights, record, release_media
from distributor.releases.models import Release

# -- rights over time --------------------------------------------------------------------------


def expire_due(session: Session, now: dt.datetime) -> list[int]:
    """The daily sweep: assets whose rights ended are hidden everywhere; returns their ids."""
    due = list(
        session.scalars(
            select(MediaAsset)
            .where(MediaAsset.rights_state == RightsState.ACTIVE)
            .where(MediaAsset.rights_until.is_not(None), MediaAsset.rights_until <= now)
            .with_for_update(skip_locked=True, of=MediaAsset)
        )
    )
    for asset in due:
        move_rights(asset, RightsState.EXPIRED)
        record(
            session,
            asset,
            "expired",
            "Rights ended: hidden from the newsroom, feeds and downloads.",
            None,
            now,
        )
    session.flush()
    return [a.id for a in due]


@dataclass(frozen=True)
class RightsProblem:
    asset: MediaAsset
    is_blocking: bool  # expired: the send must not go
    detail: str


def rights_problems(
    session: Session, release: Release, *, now: dt.datetime, warn_days: int
) -> list[RightsProblem]:
    """What a send of this release would carry whose rights end too soon."""
    horizon = now + dt.timedelta(days=warn_days)
    if release.embargo_until is not None and release.embargo_until > horizon:
        horizon = release.embargo_until
    problems = []
    for item in release_media(session, release.id):
        asset = item.asset
        if not is_available(asset, now):
            problems.append(
                RightsProblem(asset, True, f"“{asset.title}”: its rights have ended. Remove it.")
            )
        elif asset.rights_until is not None and asset.rights_until <= horizon:
            when = asset.rights_until.strftime("%d %b %Y %H:%M UTC")
            why = (
                "before the embargo lifts"
                if release.embargo_until is not None and asset.rights_until <= release.embargo_until
                else f"within {warn_days} days"
            )
            problems.append(
                RightsProblem(asset, False, f"“{asset.title}”: rights end {when}, {why}.")
            )
    return problems


def refuse_expired_rights(session: Session, release: Release, *, now: dt.datetime) -> None:
    """Raise when a send of this release would carry an asset whose rights have ended."""
    blocking = [p for p in rights_problems(session, release, now=now, warn_days=0) if p.is_blocking]
    if blocking:
        raise ValidationFailed(
            "This release carries library assets whose rights have ended; remove them first: "
            + " ".join(p.detail for p in blocking)
        )
