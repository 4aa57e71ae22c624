"""The release workflow: one state machine, who may make each move, and the audit trail.

``published_at`` is the moment a release became public on the newsroom. Approving a release
without an embargo publishes it at once; an embargoed release is published by the periodic
embargo sweep (``publish_due_embargoes``) once ``embargo_until`` has passed. The newsroom shows
releases that are published, not embargoed any more, and in a public status (not withdrawn).
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.db import utcnow
from distributor.errors import Forbidden, ValidationFailed
from distributor.releases.models import (
    PUBLIC_STATUSES,
    Release,
    ReleaseStatus,
    ReleaseTransition,
    ReleaseVersion,
)
from distributor.signals import release_moved
from distributor.statemachine import StateMachine

S = ReleaseStatus

RELEASE_WORKFLOW: StateMachine[ReleaseStatus] = StateMachine(
    "release",
    {
        S.DRAFT: {S.IN_REVIEW, S.WITHDRAWN},
        S.IN_REVIEW: {S.DRAFT, S.APPROVED, S.WITHDRAWN},
        S.APPROVED: {S.SCHEDULED, S.SENDING, S.WITHDRAWN},
        S.SCHEDULED: {S.APPROVED, S.SENDING, S.WITHDRAWN},
        S.SENDING: {S.SENT, S.APPROVED},
        S.SENT: {S.WITHDRAWN},
        S.WITHDRAWN: {S.DRAFT},
    },
)

_ALL_STAFF = frozenset(Role)
_EDITORS = frozenset({Role.EDITOR, Role.ADMIN})
_SYSTEM_ONLY: frozenset[Role] = frozenset()

# Who may make each move. The system (``by=None``: the delivery worker, a sweep) may make any
# move the state machine allows; ``sending -> sent`` is the worker's alone.
TRANSITION_ROLES: dict[tuple[ReleaseStatus, ReleaseStatus], frozenset[Role]] = {
    (S.DRAFT, S.IN_REVIEW): _ALL_STAFF,  # submit for review
    (S.DRAFT, S.WITHDRAWN): _ALL_STAFF,  # abandon a draft
    (S.IN_REVIEW, S.DRAFT): _EDITORS,  # send back, with a comment
    (S.IN_REVIEW, S.APPROVED): _EDITORS,
    (S.IN_REVIEW, S.WITHDRAWN): _EDITORS,
    (S.APPROVED, S.SCHEDULED): _EDITORS,
    (S.APPROVED, S.SENDING): _EDITORS,  # send now
    (S.APPROVED, S.WITHDRAWN): _EDITORS,
    (S.SCHEDULED, S.APPROVED): _EDITORS,  # cancel the schedule
    (S.SCHEDULED, S.SENDING): _EDITORS,
    (S.SCHEDULED, S.WITHDRAWN): _EDITORS,
    (S.SENDING, S.SENT): _SYSTEM_ONLY,
    (S.SENDING, S.APPROVED): _EDITORS,  # cancel the send
    (S.SENT, S.WITHDRAWN): _EDITORS,
    (S.WITHDRAWN, S.DRAFT): _EDITORS,  # restore as a draft
}

# Moves that need a reason in the audit log when a person makes them.
COMMENT_REQUIRED: frozenset[tuple[ReleaseStatus, ReleaseStatus]] = frozenset(
    {(S.IN_REVIEW, S.DRAFT)}
)

# Human names for the buttons on the release page.
ACTION_LABELS: dict[tuple[ReleaseStatus, ReleaseStatus], str] = {
    (S.DRAFT, S.IN_REVIEW): "Submit for review",
    (S.DRAFT, S.WITHDRAWN): "Discard draft",
    (S.IN_REVIEW, S.DRAFT): "Send back",
    (S.IN_REVIEW, S.APPROVED): "Approve",
    (S.IN_REVIEW, S.WITHDRAWN): "Withdraw",
    (S.APPROVED, S.WITHDRAWN): "Withdraw",
    (S.SCHEDULED, S.APPROVED): "Cancel schedule",
    (S.SCHEDULED, S.WITHDRAWN): "Withdraw",
    (S.SENDING, S.APPROVED): "Cancel send",
    (S.SENT, S.WITHDRAWN): "Withdraw",
    (S.WITHDRAWN, S.DRAFT): "Restore as draft",
}


def may_transition(user: User | None, current: ReleaseStatus, target: ReleaseStatus) -> bool:
    """Whether ``user`` (None: the system) may move a release from ``current`` to ``target``."""
    if not RELEASE_WORKFLOW.can(current, target):
        return False
    if user is None:
        return True
    return user.role in TRANSITION_ROLES.get((current, target), _SYSTEM_ONLY)


def transition(
    session: Session,
    release: Release,
    to: ReleaseStatus,
    *,
    by: User | None,
    comment: str = "",
    now: dt.datetime | None = None,
    require_other_approver: bool = False,
) -> None:
    """Move ``release`` to ``to``, checking the workflow and the user's role; log the move.

    ``require_other_approver`` (``REQUIRE_FOUR_EYES``): whoever saved the last version may not
    approve it; a second person must (the four-eyes principle).
    """
    current = release.status
    RELEASE_WORKFLOW.check(current, to)
    if require_other_approver and by is not None and to is S.APPROVED and current is S.IN_REVIEW:
        last_editor = session.scalar(
            select(ReleaseVersion.by_id)
            .where(ReleaseVersion.release_id == release.id)
            .order_by(ReleaseVersion.number.desc())
            .limit(1)
        )
        if last_editor == by.id:
            raise Forbidden("Four-eyes rule: someone other than its last editor must approve it.")
    if by is not None:
        if not by.is_active:
            raise Forbidden("This account is disabled.")
        if by.role not in TRANSITION_ROLES.get((current, to), _SYSTEM_ONLY):
            raise Forbidden(
                f"A {by.role.label.lower()} may not move a release from "
                f"{current.label.lower()} to {to.label.lower()}."
            )
        if (current, to) in COMMENT_REQUIRED and not comment.strip():
            raise ValidationFailed("Say what needs to change: a comment is required.")
    now = now or utcnow()
    if to is S.APPROVED and current is S.IN_REVIEW:
        _publish_if_due(release, now)
    elif to is S.DRAFT:
        # A draft is not public, whatever it was before.
        release.published_at = None
    if to is S.WITHDRAWN:
        # The reviewers' link dies with the release and stays dead if it is restored.
        release.preview_token = secrets.token_urlsafe(32)
    release.status = to
    session.add(
        ReleaseTransition(
            release_id=release.id,
            from_status=current,
            to_status=to,
            by_id=by.id if by is not None else None,
            comment=comment.strip(),
            created_at=now,
        )
    )
    session.flush()
    release_moved.send(
        release, session=session, from_status=current, to_status=to, by=by, comment=comment
    )


def _publish_if_due(release: Release, now: dt.datetime) -> None:
    if release.published_at is not None:
        return
    if release.embargo_until is None or release.embargo_until <= now:
        release.published_at = now


def is_publicly_visible(release: Release, now: dt.datetime) -> bool:
    """Published, embargo lifted and not withdrawn: may appear on the newsroom, feeds, search."""
    return (
        release.status in PUBLIC_STATUSES
        and release.published_at is not None
        and release.published_at <= now
        and (release.embargo_until is None or release.embargo_until <= now)
    )


def publish_due_embargoes(session: Session, now: dt.datetime) -> list[int]:
    """Publish approved releases whose embargo has lifted by ``now``; returns their ids."""
    due = session.scalars(
        select(Release)
        .where(
            Release.status.in_(PUBLIC_STATUSES),
            Release.published_at.is_(None),
            Release.embargo_until.is_not(None),
            Release.embargo_until <= now,
        )
        .order_by(Release.embargo_until)
        .with_for_update(of=Release, skip_locked=True)
    ).all()
    for release in due:
        # The public date is the lift time, not the moment the sweep happened to run.
        release.published_at = release.embargo_until
    session.flush()
    return [release.id for release in due]


def set_embargo(release: Release, embargo_until: dt.datetime | None, now: dt.datetime) -> None:
    """Change the public-lift time; a future embargo takes a release off the newsroom again."""
    if embargo_until is not None and embargo_until.tzinfo is None:
        raise ValidationFailed("The embargo time needs a time zone.")
    release.embargo_until = embargo_until
    if release.status not in PUBLIC_STATUSES:
        return
    if embargo_until is not None and embargo_until > now:
        release.published_at = None
    elif release.published_at is None:
        release.published_at = embargo_until or now
