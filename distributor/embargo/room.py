"""What a personal room link shows: decided here, rendered by ``embargo.views``.

A link is bound to the first browser that enters the room with a button (a POST: mail
scanners such as Microsoft Safe Links only GET, so they can neither enter nor bind). In any
other browser the link shows a page that can mail a one-time "open it here" link to the
address the release went to, so a forwarded link opens nothing for whoever received it. A
browser that holds another journalist's room is refused outright. Every view and download
is logged per journalist: when and what, never an IP address.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import JournalistMerge
from distributor.embargo import services, tokens
from distributor.embargo.models import (
    AccessEvent,
    AccessEventKind,
    AccessStatus,
    EmbargoAccess,
    EmbargoNotice,
    EmbargoTerms,
    NoticeKind,
)
from distributor.errors import NotFound, ValidationFailed
from distributor.releases.models import Release, ReleaseStatus
from distributor.settings import Settings

NOT_VALID = "This embargo link is not valid. It may have been cut short or altered."


class Outcome(enum.StrEnum):
    ROOM = "room"  # show the release
    LANDING = "landing"  # show the terms (if any) and the "enter" button
    PUBLIC = "public"  # the embargo has lifted: go to the public page
    REVOKED = "revoked"  # staff revoked this link
    WITHDRAWN = "withdrawn"  # the release was withdrawn
    OTHER_BROWSER = "other_browser"  # bound to another browser: offer a mailed link
    OTHER_JOURNALIST = "other_journalist"  # this browser holds someone else's room


@dataclass
class RoomView:
    outcome: Outcome
    access: EmbargoAccess
    release: Release
    terms: EmbargoTerms | None = None  # terms still to accept
    changes: list[str] = field(default_factory=list)


def resolve(session: Session, settings: Settings, token: str) -> tuple[EmbargoAccess, Release]:
    """The access and release a genuine token names; NotFound for anything else."""
    ids = tokens.load_room_token(settings, token)
    if ids is None:
        raise NotFound(NOT_VALID)
    release_id, journalist_id = ids
    access = None
    for _ in range(5):  # a link mailed to a record since merged into another follows it
        access = session.scalar(
            select(EmbargoAccess).where(
                EmbargoAccess.release_id == release_id,
                EmbargoAccess.journalist_id == journalist_id,
            )
        )
        kept = None
        if access is None:
            kept = session.scalar(
                select(JournalistMerge.kept_id)
                .where(JournalistMerge.merged_journalist_id == journalist_id)
                .order_by(JournalistMerge.id.desc())
                .limit(1)
            )
        if kept is None:
            break
        journalist_id = kept
    release = session.get(Release, release_id)
    if access is None or release is None:
        raise NotFound(NOT_VALID)
    return access, release


def log(
    session: Session,
    access: EmbargoAccess,
    kind: AccessEventKind,
    now: dt.datetime,
    detail: str = "",
) -> None:
    session.add(
        AccessEvent(
            access_id=access.id,
            release_id=access.release_id,
            journalist_id=access.journalist_id,
            kind=kind,
            detail=detail[:300],
            occurred_at=now,
        )
    )
    session.flush()


def _holds_other_room(session: Session, access: EmbargoAccess, browser_key: str | None) -> bool:
    if not browser_key:
        return False
    other = session.scalar(
        select(EmbargoAccess.id)
        .where(
            EmbargoAccess.browser_hash == tokens.browser_hash(browser_key),
            EmbargoAccess.journalist_id != access.journalist_id,
        )
        .limit(1)
    )
    return other is not None


def _terms_to_accept(
    session: Session, access: EmbargoAccess, release: Release
) -> EmbargoTerms | None:
    if not services.options_for(session, release.id).requires_terms:
        return None
    terms = services.current_terms(session)
    if terms is None or services.acceptance_of(session, access.journalist_id, terms.id):
        return None
    return terms


def look(
    session: Session,
    settings: Settings,
    token: str,
    browser_key: str | None,
    now: dt.datetime,
    *,
    logs_view: bool = True,
) -> RoomView:
    """What this link shows in this browser now (a GET: logs, changes nothing else)."""
    access, release = resolve(session, settings, token)
    view = RoomView(Outcome.ROOM, access, release)
    if release.status is ReleaseStatus.WITHDRAWN:
        view.outcome = Outcome.WITHDRAWN
    elif not services.is_under_embargo(release, now):
        view.outcome = Outcome.PUBLIC
    elif access.status is AccessStatus.REVOKED:
        view.outcome = Outcome.REVOKED
    elif _holds_other_room(session, access, browser_key):
        view.outcome = Outcome.OTHER_JOURNALIST
        log(
            session, access, AccessEventKind.REFUSED, now, "browser holds another journalist's room"
        )
    elif access.browser_hash is None:
        view.outcome = Outcome.LANDING
        view.terms = _terms_to_accept(session, access, release)
        if logs_view:
            log(session, access, AccessEventKind.LANDING, now)
    elif browser_key is None or tokens.browser_hash(browser_key) != access.browser_hash:
        view.outcome = Outcome.OTHER_BROWSER
        log(session, access, AccessEventKind.REFUSED, now, "another browser")
    else:
        view.terms = _terms_to_accept(session, access, release)
        if view.terms is not None:
            view.outcome = Outcome.LANDING  # new terms since they entered
        else:
            view.changes = services.release_changes(session, release)
            if logs_view:
                log(session, access, AccessEventKind.ROOM_VIEW, now)
    return view


def enter(
    session: Session,
    settings: Settings,
    token: str,
    *,
    browser_key: str,
    accepts_terms: bool,
    now: dt.datetime,
) -> RoomView:
    """The "enter" button: accept the terms if asked, bind this browser if the link is new."""
    view = look(session, settings, token, browser_key, now, logs_view=False)
    if view.outcome is not Outcome.LANDING:
        return view
    access, release = view.access, view.release
    if view.terms is not None:
        if not accepts_terms:
            raise ValidationFailed("Tick the box to accept the embargo terms.")
        services.accept_terms(
            session,
            journalist_id=access.journalist_id,
            terms=view.terms,
            release_id=release.id,
            now=now,
        )
        log(session, access, AccessEventKind.TERMS_ACCEPTED, now, f"version {view.terms.version}")
    if access.browser_hash is None:
        access.browser_hash = tokens.browser_hash(browser_key)
        access.bound_at = now
        log(session, access, AccessEventKind.ENTERED, now)
    session.flush()
    view.outcome = Outcome.ROOM
    view.terms = None
    return view


def request_new_browser(
    session: Session, settings: Settings, token: str, browser_key: str | None, now: dt.datetime
) -> bool:
    """Queue a mail to the link's owner that opens the room in the asking browser.

    Whoever asks, the mail goes to the address the release was sent to, so a forwarded
    link gets its reader nothing. At most one such mail per link per ten minutes.
    """
    view = look(session, settings, token, browser_key, now, logs_view=False)
    if view.outcome is not Outcome.OTHER_BROWSER:
        return False
    recent = session.scalar(
        select(EmbargoNotice.id).where(
            EmbargoNotice.access_id == view.access.id,
            EmbargoNotice.kind == NoticeKind.NEW_BROWSER,
            EmbargoNotice.created_at > now - dt.timedelta(minutes=10),
        )
    )
    if recent is not None:
        return True
    session.add(
        EmbargoNotice(
            access_id=view.access.id,
            kind=NoticeKind.NEW_BROWSER,
            key=secrets.token_urlsafe(18),
            created_at=now,
        )
    )
    log(session, view.access, AccessEventKind.NEW_BROWSER_REQUESTED, now)
    return True


def move_to_browser(
    session: Session,
    settings: Settings,
    token: str,
    *,
    nonce: str,
    code: str,
    browser_key: str,
    now: dt.datetime,
) -> RoomView:
    """The button on the mailed one-time link: bind the room to this browser instead."""
    access, _release = resolve(session, settings, token)
    notice = session.scalar(
        select(EmbargoNotice).where(
            EmbargoNotice.access_id == access.id,
            EmbargoNotice.kind == NoticeKind.NEW_BROWSER,
            EmbargoNotice.key == nonce,
        )
    )
    expected = tokens.new_browser_code(settings, access.id, nonce)
    fresh = notice is not None and notice.created_at > now - dt.timedelta(hours=24)
    if not fresh or not secrets.compare_digest(expected, code) or notice is None:
        raise NotFound("This link has expired or was already used. Ask for a new one.")
    if _holds_other_room(session, access, browser_key):
        raise NotFound("This browser holds another journalist's embargo room.")
    notice.key = f"used-{notice.id}"  # one use
    access.browser_hash = tokens.browser_hash(browser_key)
    access.bound_at = now
    log(session, access, AccessEventKind.ENTERED, now, "moved to a new browser")
    return look(session, settings, token, browser_key, now, logs_view=False)
