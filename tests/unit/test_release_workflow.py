"""The release workflow: every move, every role, the audit log, publication and embargoes."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.db import utcnow
from distributor.errors import Forbidden, IllegalTransition, ValidationFailed
from distributor.releases import services
from distributor.releases.models import ReleaseStatus, ReleaseTransition
from distributor.releases.workflow import RELEASE_WORKFLOW, TRANSITION_ROLES
from tests.support.releases import make_release, staff

EDITORS = {Role.EDITOR, Role.ADMIN}

# The moves the issue asks for, and who may make them (None: the system only).
EXPECTED: dict[tuple[ReleaseStatus, ReleaseStatus], set[Role]] = {
    (ReleaseStatus.DRAFT, ReleaseStatus.IN_REVIEW): set(Role),
    (ReleaseStatus.DRAFT, ReleaseStatus.WITHDRAWN): set(Role),
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.DRAFT): EDITORS,
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED): EDITORS,
    (ReleaseStatus.IN_REVIEW, ReleaseStatus.WITHDRAWN): EDITORS,
    (ReleaseStatus.APPROVED, ReleaseStatus.SCHEDULED): EDITORS,
    (ReleaseStatus.APPROVED, ReleaseStatus.SENDING): EDITORS,
    (ReleaseStatus.APPROVED, ReleaseStatus.WITHDRAWN): EDITORS,
    (ReleaseStatus.SCHEDULED, ReleaseStatus.APPROVED): EDITORS,
    (ReleaseStatus.SCHEDULED, ReleaseStatus.SENDING): EDITORS,
    (ReleaseStatus.SCHEDULED, ReleaseStatus.WITHDRAWN): EDITORS,
    (ReleaseStatus.SENDING, ReleaseStatus.SENT): set(),
    (ReleaseStatus.SENDING, ReleaseStatus.APPROVED): EDITORS,
    (ReleaseStatus.SENT, ReleaseStatus.WITHDRAWN): EDITORS,
    (ReleaseStatus.WITHDRAWN, ReleaseStatus.DRAFT): EDITORS,
}


def test_the_state_machine_allows_exactly_the_documented_moves() -> None:
    allowed = {
        (a, b)
        for a, b in itertools.product(ReleaseStatus, ReleaseStatus)
        if RELEASE_WORKFLOW.can(a, b)
    }
    assert allowed == set(EXPECTED)
    assert set(TRANSITION_ROLES) == set(EXPECTED)


MOVES = [(a, b, role) for (a, b) in EXPECTED for role in Role]


@pytest.mark.parametrize(("current", "target", "role"), MOVES)
def test_each_role_may_make_exactly_its_moves(
    session: Session, current: ReleaseStatus, target: ReleaseStatus, role: Role
) -> None:
    user = staff(session, role)
    release = make_release(session, status=current)
    comment = "Please tighten the second paragraph."
    if role in EXPECTED[(current, target)]:
        services.transition(session, release, target, by=user, comment=comment)
        assert release.status is target
        log = session.scalars(
            select(ReleaseTransition).where(ReleaseTransition.release_id == release.id)
        ).all()
        last = max(log, key=lambda t: t.id)
        assert (last.from_status, last.to_status, last.by_id) == (current, target, user.id)
        assert last.comment == comment
    else:
        with pytest.raises(Forbidden):
            services.transition(session, release, target, by=user, comment=comment)
        assert release.status is current


@pytest.mark.parametrize(("current", "target"), list(EXPECTED))
def test_the_system_may_make_every_allowed_move(
    session: Session, current: ReleaseStatus, target: ReleaseStatus
) -> None:
    release = make_release(session, status=current)
    services.transition(session, release, target, by=None)
    assert release.status is target
    last = session.scalars(
        select(ReleaseTransition)
        .where(ReleaseTransition.release_id == release.id)
        .order_by(ReleaseTransition.id.desc())
    ).first()
    assert last is not None and last.by_id is None


ILLEGAL = [
    (a, b) for a, b in itertools.product(ReleaseStatus, ReleaseStatus) if (a, b) not in EXPECTED
]


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_moves_are_refused_even_for_admins(
    session: Session, current: ReleaseStatus, target: ReleaseStatus
) -> None:
    admin = staff(session, Role.ADMIN)
    release = make_release(session, status=current)
    with pytest.raises(IllegalTransition):
        services.transition(session, release, target, by=admin, comment="x")
    assert release.status is current


def test_only_an_approved_release_can_be_scheduled_or_sent(session: Session) -> None:
    editor = staff(session, Role.EDITOR)
    for status in (
        ReleaseStatus.DRAFT,
        ReleaseStatus.IN_REVIEW,
        ReleaseStatus.SENT,
        ReleaseStatus.WITHDRAWN,
    ):
        release = make_release(session, status=status)
        for target in (ReleaseStatus.SCHEDULED, ReleaseStatus.SENDING):
            with pytest.raises(IllegalTransition):
                services.transition(session, release, target, by=editor)


def test_sending_back_needs_a_comment(session: Session) -> None:
    editor = staff(session, Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    with pytest.raises(ValidationFailed):
        services.transition(session, release, ReleaseStatus.DRAFT, by=editor, comment="  ")
    assert release.status is ReleaseStatus.IN_REVIEW
    services.transition(session, release, ReleaseStatus.DRAFT, by=editor, comment="Add a quote.")
    assert release.status is ReleaseStatus.DRAFT


def test_a_disabled_account_cannot_move_releases(session: Session) -> None:
    editor = staff(session, Role.EDITOR)
    editor.is_active = False
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    with pytest.raises(Forbidden):
        services.transition(session, release, ReleaseStatus.APPROVED, by=editor)


# -- publication and embargo -------------------------------------------------------------------


def test_approving_without_embargo_publishes_at_once(session: Session) -> None:
    now = utcnow()
    release = make_release(session, status=ReleaseStatus.APPROVED, now=now)
    assert release.published_at == now
    assert services.is_publicly_visible(release, now)


def test_an_embargoed_release_is_published_by_the_sweep_after_the_lift(session: Session) -> None:
    now = utcnow()
    lift = now + dt.timedelta(hours=2)
    release = make_release(session, status=ReleaseStatus.APPROVED, embargo_until=lift, now=now)
    assert release.published_at is None
    assert not services.is_publicly_visible(release, now)
    assert services.publish_due_embargoes(session, now + dt.timedelta(hours=1)) == []
    assert release.published_at is None
    published = services.publish_due_embargoes(session, lift + dt.timedelta(seconds=30))
    assert published == [release.id]
    assert release.published_at == lift
    assert services.is_publicly_visible(release, lift + dt.timedelta(seconds=30))
    # A second sweep finds nothing to do.
    assert services.publish_due_embargoes(session, lift + dt.timedelta(minutes=2)) == []


def test_the_sweep_ignores_drafts_and_withdrawn_releases(session: Session) -> None:
    now = utcnow()
    past = now - dt.timedelta(minutes=5)
    draft = make_release(session, status=ReleaseStatus.DRAFT)
    draft.embargo_until = past
    withdrawn = make_release(session, status=ReleaseStatus.WITHDRAWN)
    withdrawn.embargo_until = past
    session.flush()
    assert services.publish_due_embargoes(session, now) == []


def test_withdrawn_and_unapproved_releases_are_never_public(session: Session) -> None:
    now = utcnow()
    for status in (ReleaseStatus.DRAFT, ReleaseStatus.IN_REVIEW, ReleaseStatus.WITHDRAWN):
        assert not services.is_publicly_visible(make_release(session, status=status, now=now), now)
    sent = make_release(session, status=ReleaseStatus.SENT, now=now)
    assert services.is_publicly_visible(sent, now)
    services.transition(session, sent, ReleaseStatus.WITHDRAWN, by=None)
    assert not services.is_publicly_visible(sent, now)


def test_a_future_embargo_set_after_publication_hides_the_release_again(
    session: Session,
) -> None:
    now = utcnow()
    release = make_release(session, status=ReleaseStatus.APPROVED, now=now)
    services.set_embargo(release, now + dt.timedelta(hours=1), now)
    assert release.published_at is None
    assert not services.is_publicly_visible(release, now)


def test_restoring_a_withdrawn_release_makes_it_an_unpublished_draft(session: Session) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    services.transition(session, release, ReleaseStatus.WITHDRAWN, by=None)
    services.transition(session, release, ReleaseStatus.DRAFT, by=None)
    assert release.published_at is None
    assert release.status is ReleaseStatus.DRAFT
