"""Embargo terms, who may receive embargoed news, release options, access and revocation.

Service functions take the session, may flush and never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, func, select, text
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.audience.models import Journalist
from distributor.db import UTCDateTime
from distributor.embargo.models import (
    ACCESS_MACHINE,
    AccessStatus,
    EmbargoAccess,
    EmbargoBreach,
    EmbargoStanding,
    EmbargoTerms,
    ReleaseEmbargoOptions,
    Standing,
    TermsAcceptance,
)
from distributor.errors import NotFound, ValidationFailed
from distributor.releases.models import Release

MAX_TERMS_CHARS = 20_000
MAX_SUMMARY_CHARS = 600


def is_under_embargo(release: Release, now: dt.datetime) -> bool:
    """The one rule: an embargo holds until ``embargo_until`` and publication."""
    if release.embargo_until is None:
        return False
    return release.embargo_until > now or release.published_at is None


# -- terms -----------------------------------------------------------------------------------


def current_terms(session: Session) -> EmbargoTerms | None:
    """The latest version of the embargo terms, or None before any was written."""
    return session.scalar(select(EmbargoTerms).order_by(EmbargoTerms.version.desc()).limit(1))


def publish_terms(
    session: Session, *, summary: str, body: str, by: User | None, now: dt.datetime
) -> EmbargoTerms:
    """Write a new version of the terms; journalists accept each version once."""
    summary, body = summary.strip(), body.strip()
    if not summary or not body:
        raise ValidationFailed("The terms need a short summary (for the mail) and the full text.")
    if len(summary) > MAX_SUMMARY_CHARS or len(body) > MAX_TERMS_CHARS:
        raise ValidationFailed(
            f"Keep the summary under {MAX_SUMMARY_CHARS} and the text under "
            f"{MAX_TERMS_CHARS} characters."
        )
    latest = session.scalar(select(func.max(EmbargoTerms.version))) or 0
    terms = EmbargoTerms(
        version=latest + 1,
        summary=summary,
        body=body,
        created_by_id=by.id if by else None,
        created_at=now,
    )
    session.add(terms)
    session.flush()
    return terms


def acceptance_of(session: Session, journalist_id: int, terms_id: int) -> TermsAcceptance | None:
    return session.scalar(
        select(TermsAcceptance).where(
            TermsAcceptance.journalist_id == journalist_id, TermsAcceptance.terms_id == terms_id
        )
    )


def accept_terms(
    session: Session, *, journalist_id: int, terms: EmbargoTerms, release_id: int, now: dt.datetime
) -> TermsAcceptance:
    """Record that ``journalist_id`` accepted ``terms`` (once per version; again is harmless)."""
    found = acceptance_of(session, journalist_id, terms.id)
    if found is not None:
        return found
    acceptance = TermsAcceptance(
        journalist_id=journalist_id, terms_id=terms.id, release_id=release_id, accepted_at=now
    )
    session.add(acceptance)
    session.flush()
    return acceptance


# -- standing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EffectiveStanding:
    standing: Standing  # ALLOWED once a probation has ended
    probation_until: dt.datetime | None
    reason: str

    @property
    def is_allowed(self) -> bool:
        return self.standing is Standing.ALLOWED


def standing_of(session: Session, journalist_id: int, now: dt.datetime) -> EffectiveStanding:
    """Whether the journalist may receive embargoed news now (same rule as the send)."""
    row = session.get(EmbargoStanding, journalist_id)
    if row is None:
        return EffectiveStanding(Standing.ALLOWED, None, "")
    if row.standing is Standing.PROBATION and (
        row.probation_until is None or row.probation_until <= now
    ):
        return EffectiveStanding(Standing.ALLOWED, row.probation_until, row.reason)
    return EffectiveStanding(row.standing, row.probation_until, row.reason)


def set_standing(
    session: Session,
    journalist_id: int,
    *,
    standing: Standing,
    probation_until: dt.datetime | None,
    reason: str,
    by: User | None,
    now: dt.datetime,
) -> EmbargoStanding:
    """Allow, refuse, or put a journalist on probation until a date (with a reason)."""
    if session.get(Journalist, journalist_id) is None:
        raise NotFound("Journalist not found")
    reason = reason.strip()
    if standing is Standing.PROBATION:
        if probation_until is None or probation_until <= now:
            raise ValidationFailed("Probation needs an end date in the future.")
    else:
        probation_until = None
    if standing is not Standing.ALLOWED and not reason:
        raise ValidationFailed("Say why: a reason is required.")
    row = session.get(EmbargoStanding, journalist_id)
    if row is None:
        row = EmbargoStanding(journalist_id=journalist_id)
        session.add(row)
    row.standing = standing
    row.probation_until = probation_until
    row.reason = reason[:2000]
    row.updated_by_id = by.id if by else None
    row.updated_at = now
    session.flush()
    return row


def record_breach(
    session: Session,
    journalist_id: int,
    *,
    release_id: int | None,
    note: str,
    probation_days: int,
    by: User | None,
    now: dt.datetime,
) -> EmbargoBreach:
    """One action: record the breach, revoke the journalist's open room links, set probation."""
    if not note.strip():
        raise ValidationFailed("Describe the breach in a note.")
    if release_id is not None and session.get(Release, release_id) is None:
        raise NotFound("Release not found")
    until = now + dt.timedelta(days=probation_days)
    revoked = 0
    open_accesses = session.scalars(
        select(EmbargoAccess)
        .join(Release, Release.id == EmbargoAccess.release_id)
        .where(
            EmbargoAccess.journalist_id == journalist_id,
            EmbargoAccess.status == AccessStatus.ACTIVE,
        )
    ).all()
    for access in open_accesses:
        release = session.get(Release, access.release_id)
        if release is not None and is_under_embargo(release, now):
            _revoke(access, reason="breach of embargo", now=now)
            revoked += 1
    set_standing(
        session,
        journalist_id,
        standing=Standing.PROBATION,
        probation_until=until,
        reason=f"Breach: {note.strip()}",
        by=by,
        now=now,
    )
    breach = EmbargoBreach(
        journalist_id=journalist_id,
        release_id=release_id,
        note=note.strip()[:4000],
        probation_until=until,
        links_revoked=revoked,
        recorded_by_id=by.id if by else None,
        recorded_at=now,
    )
    session.add(breach)
    session.flush()
    return breach


def breaches_of(session: Session, journalist_id: int) -> list[EmbargoBreach]:
    return list(
        session.scalars(
            select(EmbargoBreach)
            .where(EmbargoBreach.journalist_id == journalist_id)
            .order_by(EmbargoBreach.recorded_at.desc())
        )
    )


# -- release options -------------------------------------------------------------------------


def options_for(session: Session, release_id: int) -> ReleaseEmbargoOptions:
    """The release's embargo options (defaults when never set; not added to the session)."""
    found = session.get(ReleaseEmbargoOptions, release_id)
    return found or ReleaseEmbargoOptions(
        release_id=release_id, requires_terms=False, sends_lift_note=False
    )


def set_options(
    session: Session,
    release_id: int,
    *,
    requires_terms: bool,
    sends_lift_note: bool,
    now: dt.datetime,
) -> ReleaseEmbargoOptions:
    """Whether the room asks for the terms and whether a note goes out at the lift."""
    if session.get(Release, release_id) is None:
        raise NotFound("Release not found")
    if requires_terms and current_terms(session) is None:
        raise ValidationFailed("Write the embargo terms first (Embargo terms page).")
    row = session.get(ReleaseEmbargoOptions, release_id)
    if row is None:
        row = ReleaseEmbargoOptions(release_id=release_id)
        session.add(row)
    row.requires_terms = requires_terms
    row.sends_lift_note = sends_lift_note
    row.updated_at = now
    session.flush()
    return row


# -- access ----------------------------------------------------------------------------------


def grant_accesses(session: Session, release_id: int, now: dt.datetime) -> int:
    """After a send froze its audience: one room access per journalist mailed under embargo,
    and a copy of what they were sent (to show later changes as "updated")."""
    release = session.get(Release, release_id)
    if release is None or not is_under_embargo(release, now):
        return 0
    statement = text(
        "INSERT INTO embargo_accesses (release_id, journalist_id, delivery_id, status, "
        "revoked_reason, created_at) "
        "SELECT d.release_id, d.journalist_id, d.id, 'active', '', :now FROM deliveries d "
        "WHERE d.release_id = :release_id AND d.journalist_id IS NOT NULL "
        "AND d.status <> 'digest' "
        "AND NOT EXISTS (SELECT 1 FROM embargo_accesses a WHERE a.release_id = d.release_id "
        "AND a.journalist_id = d.journalist_id)"
    ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("release_id", type_=Integer()))
    result = session.execute(statement, {"now": now, "release_id": release_id})
    options = session.get(ReleaseEmbargoOptions, release_id)
    if options is None:
        options = ReleaseEmbargoOptions(
            release_id=release_id, requires_terms=False, sends_lift_note=False, updated_at=now
        )
        session.add(options)
    if options.sent_at is None:
        options.sent_at = now
        options.sent_title = release.title
        options.sent_summary = release.summary
        options.sent_body_markdown = release.body_markdown
        options.sent_attachments = "\n".join(a.filename for a in release.attachments)
    session.flush()
    return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]


def _revoke(access: EmbargoAccess, *, reason: str, now: dt.datetime) -> None:
    ACCESS_MACHINE.check(access.status, AccessStatus.REVOKED)
    access.status = AccessStatus.REVOKED
    access.revoked_at = now
    access.revoked_reason = reason[:300]


def revoke(
    session: Session,
    release_id: int,
    *,
    journalist_id: int | None,
    reason: str,
    now: dt.datetime,
) -> int:
    """Revoke one journalist's room link for a release, or everyone's (None); returns how many."""
    query = select(EmbargoAccess).where(
        EmbargoAccess.release_id == release_id, EmbargoAccess.status == AccessStatus.ACTIVE
    )
    if journalist_id is not None:
        query = query.where(EmbargoAccess.journalist_id == journalist_id)
    accesses = session.scalars(query).all()
    for access in accesses:
        _revoke(access, reason=reason or "revoked by staff", now=now)
    session.flush()
    return len(accesses)


def restore(session: Session, release_id: int, journalist_id: int, now: dt.datetime) -> None:
    """Give a revoked link back (a mistake undone); the same personal link works again."""
    access = session.scalar(
        select(EmbargoAccess).where(
            EmbargoAccess.release_id == release_id, EmbargoAccess.journalist_id == journalist_id
        )
    )
    if access is None:
        raise NotFound("This journalist has no room for this release.")
    ACCESS_MACHINE.check(access.status, AccessStatus.ACTIVE)
    if not standing_of(session, journalist_id, now).is_allowed:
        raise ValidationFailed("This journalist may not receive embargoed news at the moment.")
    access.status = AccessStatus.ACTIVE
    access.revoked_at = None
    access.revoked_reason = ""
    session.flush()


def release_changes(session: Session, release: Release) -> list[str]:
    """What changed in title, summary, body or attachments since the embargoed mail went out."""
    options = session.get(ReleaseEmbargoOptions, release.id)
    if options is None or options.sent_at is None:
        return []
    changes: list[str] = []
    if (options.sent_title or "") != release.title:
        changes.append(f"Title changed (was: {options.sent_title})")
    if (options.sent_summary or "") != release.summary:
        changes.append("Summary changed")
    if (options.sent_body_markdown or "") != release.body_markdown:
        changes.append("Text changed")
    before = [n for n in (options.sent_attachments or "").split("\n") if n]
    now_names = [a.filename for a in release.attachments]
    changes.extend(f"Attachment added: {n}" for n in now_names if n not in before)
    changes.extend(f"Attachment removed: {n}" for n in before if n not in now_names)
    return changes


# -- merging duplicates ------------------------------------------------------------------------

_STRICTNESS = {Standing.ALLOWED: 0, Standing.PROBATION: 1, Standing.NOT_ALLOWED: 2}


def merge_into(session: Session, *, keep_id: int, merged_id: int, now: dt.datetime) -> None:
    """A duplicate folds into the kept journalist: rooms, their log, terms acceptances and
    breaches move with it (where the kept record has none of its own), and the stricter
    standing wins, so merging never lifts a probation."""
    params = {"keep": keep_id, "dup": merged_id}
    session.execute(
        text(
            "UPDATE embargo_accesses SET journalist_id = :keep WHERE journalist_id = :dup "
            "AND release_id NOT IN (SELECT release_id FROM embargo_accesses "
            "WHERE journalist_id = :keep)"
        ),
        params,
    )
    session.execute(
        text(
            "UPDATE embargo_access_events SET journalist_id = :keep WHERE journalist_id = :dup "
            "AND access_id IN (SELECT id FROM embargo_accesses WHERE journalist_id = :keep)"
        ),
        params,
    )
    session.execute(
        text(
            "UPDATE embargo_terms_acceptances SET journalist_id = :keep "
            "WHERE journalist_id = :dup AND terms_id NOT IN "
            "(SELECT terms_id FROM embargo_terms_acceptances WHERE journalist_id = :keep)"
        ),
        params,
    )
    session.execute(
        text("UPDATE embargo_breaches SET journalist_id = :keep WHERE journalist_id = :dup"),
        params,
    )
    theirs = session.get(EmbargoStanding, merged_id)
    if theirs is None:
        return
    ours = standing_of(session, keep_id, now)
    their = standing_of(session, merged_id, now)
    stricter = _STRICTNESS[their.standing] > _STRICTNESS[ours.standing] or (
        their.standing is ours.standing is Standing.PROBATION
        and (their.probation_until or now) > (ours.probation_until or now)
    )
    if stricter:
        set_standing(
            session,
            keep_id,
            standing=their.standing,
            probation_until=their.probation_until,
            reason=f"{their.reason} (from merged record)".strip(),
            by=None,
            now=now,
        )
    session.delete(theirs)
    session.flush()
