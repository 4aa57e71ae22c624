"""Rights over time: the sweep that expires them and what a send may carry.

``services.is_available`` decides whether an asset may be shown; this module makes an ended
right permanent (state and history) and tells the pre-send checklist what is wrong.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from distributor.errors import ValidationFailed
from distributor.logs import get_logger
from distributor.mail import outgoing as outgoing_mail
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport
from distributor.media.models import MediaAsset, RightsState
from distributor.media.services import (
    is_available,
    move_rights,
    record,
    release_media,
    where_used,
)
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release
from distributor.settings import Settings

log = get_logger("distributor.media")

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


# -- warning the owner -------------------------------------------------------------------------


def due_expiry_notices(session: Session, now: dt.datetime, days: int) -> list[int]:
    """Assets whose rights end within ``days`` and whose owner was not warned about that date."""
    if days <= 0:
        return []
    return list(
        session.scalars(
            select(MediaAsset.id)
            .where(MediaAsset.rights_state == RightsState.ACTIVE)
            .where(MediaAsset.owner_id.is_not(None), MediaAsset.rights_until.is_not(None))
            .where(MediaAsset.rights_until > now)
            .where(MediaAsset.rights_until <= now + dt.timedelta(days=days))
            .where(
                or_(
                    MediaAsset.expiry_notice_for.is_(None),
                    MediaAsset.expiry_notice_for != MediaAsset.rights_until,
                )
            )
            .order_by(MediaAsset.id)
        )
    )


@dataclass(frozen=True)
class OutgoingNotice:
    asset_id: int
    rights_until: dt.datetime
    mail: outgoing_mail.OutgoingMail


def build_expiry_notice(
    session: Session, asset_id: int, *, settings: Settings, renderer: EmailRenderer
) -> OutgoingNotice | None:
    """The mail to an asset's owner; None when there is nothing (left) to say."""
    from distributor.media.downloads import credit_line

    asset = session.get(MediaAsset, asset_id)
    if asset is None or asset.owner is None or asset.rights_until is None:
        return None
    if not asset.owner.is_active or asset.expiry_notice_for == asset.rights_until:
        return None
    org = get_organisation(session, settings)
    ends = asset.rights_until.astimezone(ZoneInfo(org.timezone))
    context = {
        "org": org,
        "name": asset.owner.name or asset.owner.email,
        "title": asset.title,
        "credit": credit_line(asset),
        "ends": f"{ends.day} {ends.strftime('%B %Y')}",
        "used_in": [r.title for r, _ in where_used(session, asset.id)],
        "asset_url": f"{settings.public_base_url}/staff/media/{asset.id}",
    }
    # The one road every mail takes: VERP sender, DKIM when on, our header rules.
    mail = outgoing_mail.build_transactional(
        settings,
        rendered=renderer.render_email("media_rights_ending", context),
        from_name=org.name,
        to_address=asset.owner.email,
        reply_to=org.press_email,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    return OutgoingNotice(asset.id, asset.rights_until, mail)


def send_expiry_notices(
    session_factory: Callable[[], AbstractContextManager[Session]],
    *,
    settings: Settings,
    renderer: EmailRenderer,
    transport: MailTransport,
    now: Callable[[], dt.datetime],
) -> int:
    """Warn owners once per rights end date; a failed send is tried again by the next sweep."""
    with session_factory() as session:
        ids = due_expiry_notices(session, now(), settings.media_expiry_notice_days)
    sent = 0
    for asset_id in ids:
        with session_factory() as session:
            outgoing = build_expiry_notice(session, asset_id, settings=settings, renderer=renderer)
        if outgoing is None:
            continue
        try:
            outgoing_mail.send(transport, outgoing.mail)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("rights notice not sent", asset_id=asset_id, error=str(exc))
            continue
        # Recorded after the send: a crash in between warns twice, never not at all.
        with session_factory() as session:
            asset = session.get(MediaAsset, asset_id)
            if asset is not None:
                asset.expiry_notice_for = outgoing.rights_until
                record(
                    asset,
                    "owner warned",
                    f"Mail to {outgoing.mail.recipient}: rights end soon.",
                    None,
                    now(),
                )
        sent += 1
    return sent
