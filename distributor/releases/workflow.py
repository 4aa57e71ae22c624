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

RELEASE_WORKFLOW: StateMachine[ReleaseStatus] = StateMachine(
    "release",
    {
        ReleaseStatus.DRAFT: {ReleaseStatus.IN_REVIEW, ReleaseStatus.WITHDRAWN},
        ReleaseStatus.IN_REVIEW: {
            ReleaseStatus.DRAFT,
            ReleaseStatus.APPROVED,
            ReleaseStatus.WITHDRAWN,
        },
        ReleaseStatus.APPROVED: {
            ReleaseStatus.SCHEDULED,
            ReleaseStatus.SENDING,
            ReleaseStatus.WITHDRAWN,
        },
        ReleaseStatus.SCHEDULED: {
            ReleaseStatus.APPROVED,
            ReleaseStatus.SENDING,
            ReleaseStatus.WITHDRAWN,
        },
        ReleaseStatus.SENDING: {ReleaseStatus.SENT, ReleaseStatus.APPROVED},
        ReleaseStatus.SENT: {ReleaseStatus.WITHDRAWN},
        ReleaseStatus.WITHDRAWN: {ReleaseStatus.DRAFT},
    },
)

_ALL_STAFF = frozenset(Role)
_EDITORS = frozenset({Role.EDITOR, Role.ADMIN})
_SYSTEM_ONLY: frozenset[Role] = frozenset()

# Who may make each move. The system (``by=None``: the delivery worker, a sweep) may make any
# move the state machine allows; ``sending -> sent`` is the worker's alone.
TRANSITION_ROLES: dict[tuple[ReleaseStatus, ReleaseStatus], frozenset[Role]] = {
    (ReleaseStatus.DRAFT, ReleaseStatus.IN_REVIEW): _ALL_STAFF,  # submit for review
    (ReleaseStatus.DRAFT, ReleaseStatus.WITHDRAWN): _ALL_STAFF,  # abandon a draft
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.DRAFT): _EDITORS,  # send back, with a comment
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED): _EDITORS,
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.WITHDRAWN): _EDITORS,
    (ReleaseStatus.APPROVED, ReleaseStatus.SCHEDULED): _EDITORS,
    (ReleaseStatus.APPROVED, ReleaseStatus.SENDING): _EDITORS,  # send now
    (ReleaseStatus.APPROVED, ReleaseStatus.WITHDRAWN): _EDITORS,
    (ReleaseStatus.SCHEDULED, ReleaseStatus.APPROVED): _EDITORS,  # cancel the schedule
    (ReleaseStatus.SCHEDULED, ReleaseStatus.SENDING): _EDITORS,
    (ReleaseStatus.SCHEDULED, ReleaseStatus.WITHDRAWN): _EDITORS,
    (ReleaseStatus.SENDING, ReleaseStatus.SENT): _SYSTEM_ONLY,
    (ReleaseStatus.SENDING, ReleaseStatus.APPROVED): _EDITORS,  # cancel the send
    (ReleaseStatus.SENT, ReleaseStatus.WITHDRAWN): _EDITORS,
    (ReleaseStatus.WITHDRAWN, ReleaseStatus.DRAFT): _EDITORS,  # restore as a draft
}

# Moves that need a reason in the audit log when a person makes them.
COMMENT_REQUIRED: frozenset[tuple[ReleaseStatus, ReleaseStatus]] = frozenset(
    {(ReleaseStatus.IN_REVIEW, ReleaseStatus.DRAFT)}
)

# Human names for the buttons on the release page.
ACTION_LABELS: dict[tuple[ReleaseStatus, ReleaseStatus], str] = {
    (ReleaseStatus.DRAFT, ReleaseStatus.IN_REVIEW): "Submit for review",
    (ReleaseStatus.DRAFT, ReleaseStatus.WITHDRAWN): "Discard draft",
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.DRAFT): "Send back",
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED): "Approve",
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.WITHDRAWN): "Withdraw",
    (ReleaseStatus.APPROVED, ReleaseStatus.WITHDRAWN): "Withdraw",
    (ReleaseStatus.SCHEDULED, ReleaseStatus.APPROVED): "Cancel schedule",
    (ReleaseStatus.SCHEDULED, ReleaseStatus.WITHDRAWN): "Withdraw",
    (ReleaseStatus.SENDING, ReleaseStatus.APPROVED): "Cancel send",
    (ReleaseStatus.SENT, ReleaseStatus.WITHDRAWN): "Withdraw",
    (ReleaseStatus.WITHDRAWN, ReleaseStatus.DRAFT): "Restore as draft",
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
    if (
        require_other_approver
        and by is not None
        and to is ReleaseStatus.APPROVED
        and current is ReleaseStatus.IN_REVIEW
    ):
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
    if to is ReleaseStatus.APPROVED and current is ReleaseStatus.IN_REVIEW:
        _publish_if_due(release, now)
    elif to is ReleaseStatus.DRAFT:
        # A draft is not public, whatever it was before.
        release.published_at = None
    if to is ReleaseStatus.WITHDRAWN:
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
