"""The embargo room's rules, called as services: who is skipped, who may open what, when."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.delivery.services import audience_breakdown
from distributor.embargo import notices, reports, room, services, tokens
from distributor.embargo.models import (
    AccessEvent,
    AccessEventKind,
    AccessStatus,
    EmbargoAccess,
    EmbargoNotice,
    NoticeKind,
    NoticeStatus,
    Standing,
    TermsAcceptance,
)
from distributor.errors import Conflict, NotFound, ValidationFailed
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import InMemoryTransport
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support.embargo import another_release, delivery_of, embargoed_world

BROWSER_A = "browser-a-" + "x" * 20
BROWSER_B = "browser-b-" + "y" * 20
BROWSER_C = "browser-c-" + "z" * 20


def _token(settings: Settings, world, journalist) -> str:
    return tokens.room_token(settings, world.release.id, journalist.id)


def test_an_embargoed_send_skips_journalists_not_allowed_and_counts_why(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, freeze=False)
    now = utcnow()
    services.set_standing(
        session, world.carol.id, standing=Standing.NOT_ALLOWED, probation_until=None,
        reason="Freelancer without a desk", by=None, now=now,
    )  # fmt: skip
    counts = audience_breakdown(session, world.release.id)
    assert (counts.total, counts.embargo_probation, counts.embargo_not_allowed) == (1, 1, 1)

    from distributor.delivery.recipients import freeze_recipients

    freeze_recipients(session, send_id=world.send.id, release_id=world.release.id, now=now)
    assert delivery_of(session, world.release, world.alice) is not None
    assert delivery_of(session, world.release, world.bob) is None
    assert delivery_of(session, world.release, world.carol) is None
    # Only those mailed under embargo get a room.
    holders = session.scalars(
        select(EmbargoAccess.journalist_id).where(EmbargoAccess.release_id == world.release.id)
    ).all()
    assert holders == [world.alice.id]


def test_probation_ends_by_itself_and_an_unembargoed_release_skips_nobody(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, freeze=False)
    later = utcnow() + dt.timedelta(days=31)
    assert services.standing_of(session, world.bob.id, later).is_allowed
    assert not services.standing_of(session, world.bob.id, utcnow()).is_allowed
    world.release.embargo_until = None
    world.release.published_at = utcnow()
    session.flush()
    counts = audience_breakdown(session, world.release.id)
    assert (counts.total, counts.embargo_probation) == (3, 0)


def test_probation_needs_a_future_date_and_refusal_needs_a_reason(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, freeze=False)
    with pytest.raises(ValidationFailed):
        services.set_standing(
            session, world.alice.id, standing=Standing.PROBATION,
            probation_until=utcnow() - dt.timedelta(days=1), reason="x", by=None, now=utcnow(),
        )  # fmt: skip
    with pytest.raises(ValidationFailed):
        services.set_standing(
            session, world.alice.id, standing=Standing.NOT_ALLOWED, probation_until=None,
            reason=" ", by=None, now=utcnow(),
        )  # fmt: skip


def test_the_room_asks_for_the_terms_once_per_version_and_binds_one_browser(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    token = _token(settings, world, world.alice)
    now = utcnow()

    # A scanner (or anyone) opening the link sees the door, and nothing is bound.
    first = room.look(session, settings, token, None, now)
    assert first.outcome is room.Outcome.LANDING and first.terms is not None
    with pytest.raises(ValidationFailed):
        room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=False, now=now)
    entered = room.enter(
        session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now
    )
    assert entered.outcome is room.Outcome.ROOM
    acceptance = session.scalar(
        select(TermsAcceptance).where(TermsAcceptance.journalist_id == world.alice.id)
    )
    assert acceptance is not None and acceptance.release_id == world.release.id
    assert room.look(session, settings, token, BROWSER_A, now).outcome is room.Outcome.ROOM

    # Any other browser: not the room, but an offer to mail the owner.
    assert room.look(session, settings, token, None, now).outcome is room.Outcome.OTHER_BROWSER
    assert room.look(session, settings, token, BROWSER_C, now).outcome is room.Outcome.OTHER_BROWSER

    # New terms: asked again, in the same browser.
    services.publish_terms(session, summary="New summary", body="New text.", by=None, now=now)
    again = room.look(session, settings, token, BROWSER_A, now)
    assert again.outcome is room.Outcome.LANDING and again.terms is not None
    assert again.terms.version == 2


def test_accepted_terms_are_not_asked_again_in_the_next_room(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    token = _token(settings, world, world.alice)
    room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    second = another_release(session, world)
    second_token = tokens.room_token(settings, second.id, world.alice.id)
    door = room.look(session, settings, second_token, BROWSER_A, now)
    assert door.outcome is room.Outcome.LANDING and door.terms is None
    view = room.enter(
        session, settings, second_token, browser_key=BROWSER_A, accepts_terms=False, now=now
    )
    assert view.outcome is room.Outcome.ROOM
    assert len(reports.acceptances(session, world.alice.id)) == 1


def test_a_browser_holding_one_journalists_room_cannot_open_anothers(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    carol = _token(settings, world, world.carol)
    alice = _token(settings, world, world.alice)
    room.enter(session, settings, carol, browser_key=BROWSER_C, accepts_terms=True, now=now)
    # Carol's browser opens Alice's (never used) link: refused, and Alice's link stays free.
    assert room.look(session, settings, alice, BROWSER_C, now).outcome is (
        room.Outcome.OTHER_JOURNALIST
    )
    view = room.enter(session, settings, alice, browser_key=BROWSER_C, accepts_terms=True, now=now)
    assert view.outcome is room.Outcome.OTHER_JOURNALIST
    access = session.scalar(
        select(EmbargoAccess).where(EmbargoAccess.journalist_id == world.alice.id)
    )
    assert access is not None and access.browser_hash is None


def test_revoked_lifted_and_withdrawn_links(session: Session, settings: Settings) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    token = _token(settings, world, world.alice)
    room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    assert services.revoke(session, world.release.id, journalist_id=world.alice.id,
                           reason="test", now=now) == 1  # fmt: skip
    assert room.look(session, settings, token, BROWSER_A, now).outcome is room.Outcome.REVOKED
    services.restore(session, world.release.id, world.alice.id, now)
    assert room.look(session, settings, token, BROWSER_A, now).outcome is room.Outcome.ROOM

    # At the lift every personal link leads to the public page, in any browser.
    world.release.embargo_until = now - dt.timedelta(minutes=1)
    world.release.published_at = world.release.embargo_until
    session.flush()
    assert room.look(session, settings, token, None, now).outcome is room.Outcome.PUBLIC
    world.release.status = ReleaseStatus.WITHDRAWN
    session.flush()
    assert room.look(session, settings, token, BROWSER_A, now).outcome is room.Outcome.WITHDRAWN


def test_a_token_without_a_room_names_nothing(session: Session, settings: Settings) -> None:
    world = embargoed_world(session, settings)
    from distributor.errors import NotFound

    with pytest.raises(NotFound):  # Bob was skipped: no room, whatever the signature says
        room.look(session, settings, _token(settings, world, world.bob), None, utcnow())
    with pytest.raises(NotFound):
        room.look(session, settings, "not-a-token", None, utcnow())


def test_a_breach_revokes_open_links_and_sets_probation(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    breach = services.record_breach(
        session, world.alice.id, release_id=world.release.id, note="Posted at 08:00",
        probation_days=settings.embargo_probation_days, by=None, now=now,
    )  # fmt: skip
    assert breach.links_revoked == 1
    standing = services.standing_of(session, world.alice.id, now)
    assert standing.standing is Standing.PROBATION
    assert standing.probation_until == now + dt.timedelta(days=settings.embargo_probation_days)
    token = _token(settings, world, world.alice)
    assert room.look(session, settings, token, None, now).outcome is room.Outcome.REVOKED


def test_changes_after_sending_show_and_go_out_as_one_correction(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    now = utcnow()
    with pytest.raises(Conflict):
        notices.queue_correction(session, world.release.id, now)
    world.release.title = "Sea wall to be raised by 1.5 metres"
    world.release.body_markdown += "\n\nCorrected figure."
    session.flush()
    changes = services.release_changes(session, world.release)
    assert changes[0].startswith("Title changed") and "Text changed" in changes
    token = _token(settings, world, world.alice)
    room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=False, now=now)
    assert room.look(session, settings, token, BROWSER_A, now).changes == changes

    assert notices.queue_correction(session, world.release.id, now) == 2  # Alice and Carol
    transport = InMemoryTransport()

    class _Same:
        def __enter__(self) -> Session:
            return session

        def __exit__(self, *exc: object) -> None:
            session.flush()

    sent = notices.send_queued(
        _Same, settings=settings, renderer=EmailRenderer(), transport=transport, now=utcnow
    )
    assert sent == 2
    mail = next(m for m in transport.sent if m.recipients == [world.alice.email])
    text = mail.message.decode("utf-8", "replace")
    assert "Title changed" in text
    assert world.release.preview_token not in text
    assert notices.send_queued(
        _Same, settings=settings, renderer=EmailRenderer(), transport=transport, now=utcnow
    ) == 0  # fmt: skip


def test_lift_notes_go_once_to_those_who_accepted(session: Session, settings: Settings) -> None:
    world = embargoed_world(session, settings, requires_terms=True, sends_lift_note=True)
    now = utcnow()
    token = _token(settings, world, world.alice)
    room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    assert notices.queue_lift_notes(session, now) == 0  # not lifted yet
    world.release.embargo_until = now - dt.timedelta(minutes=1)
    world.release.published_at = world.release.embargo_until
    session.flush()
    assert notices.queue_lift_notes(session, now) == 1  # Alice accepted, Carol did not
    assert notices.queue_lift_notes(session, now) == 0
    notice = session.scalar(select(EmbargoNotice).where(EmbargoNotice.kind == NoticeKind.LIFTED))
    assert notice is not None and notice.status is NoticeStatus.QUEUED


def test_a_new_browser_needs_the_owners_mailbox(session: Session, settings: Settings) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    token = _token(settings, world, world.alice)
    room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    assert room.request_new_browser(session, settings, token, BROWSER_B, now)
    notice = session.scalar(
        select(EmbargoNotice).where(EmbargoNotice.kind == NoticeKind.NEW_BROWSER)
    )
    assert notice is not None
    outgoing = notices.build_notice(session, notice.id, settings=settings, renderer=EmailRenderer())
    assert outgoing is not None and outgoing.mail.recipient == world.alice.email
    code = tokens.new_browser_code(settings, notice.access_id, notice.key)
    with pytest.raises(NotFound, match="expired or was already used"):  # a wrong code does nothing
        room.move_to_browser(session, settings, token, nonce=notice.key, code="x" * 32,
                             browser_key=BROWSER_B, now=now)  # fmt: skip
    moved = room.move_to_browser(
        session, settings, token, nonce=notice.key, code=code, browser_key=BROWSER_B, now=now
    )
    assert moved.outcome is room.Outcome.ROOM
    assert room.look(session, settings, token, BROWSER_A, now).outcome is (
        room.Outcome.OTHER_BROWSER
    )
    with pytest.raises(NotFound, match="expired or was already used"):  # used once
        room.move_to_browser(session, settings, token, nonce=notice.key, code=code,
                             browser_key=BROWSER_C, now=now)  # fmt: skip


def test_staff_rows_show_acceptance_views_and_downloads(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    now = utcnow()
    token = _token(settings, world, world.alice)
    view = room.enter(session, settings, token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    room.look(session, settings, token, BROWSER_A, now)
    room.log(session, view.access, AccessEventKind.DOWNLOAD, now, "plan.pdf")
    rows = {r.email: r for r in reports.room_rows(session, world.release.id)}
    assert set(rows) == {world.alice.email, world.carol.email}
    alice = rows[world.alice.email]
    assert alice.accepted_version == 1 and alice.entered_at is not None
    assert alice.views == 1 and alice.downloads == ["plan.pdf"]
    assert rows[world.carol.email].accepted_at is None
    kinds = [e.kind for e in session.scalars(select(AccessEvent).order_by(AccessEvent.id))]
    assert kinds[:2] == [AccessEventKind.TERMS_ACCEPTED, AccessEventKind.ENTERED]
    assert all(a.status is AccessStatus.ACTIVE for a in session.scalars(select(EmbargoAccess)))


def test_merging_a_duplicate_keeps_its_room_evidence_and_the_stricter_standing(
    session: Session, settings: Settings
) -> None:
    from distributor.audience.merge import merge_journalists
    from tests.support.delivery_seed import person

    world = embargoed_world(session, settings)
    now = utcnow()
    bob_token = _token(settings, world, world.bob)  # Bob was skipped: no room
    alice_token = _token(settings, world, world.alice)
    room.enter(session, settings, alice_token, browser_key=BROWSER_A, accepts_terms=True, now=now)
    # Alice's record is a duplicate of a new, clean one; Bob's probation must survive a merge.
    kept = person(session, "alice.kept@a.example")
    merge_journalists(session, keep_id=kept.id, duplicate_id=world.alice.id)
    session.expire_all()
    view = room.look(session, settings, alice_token, BROWSER_A, now)  # the old link still works
    assert view.outcome is room.Outcome.ROOM and view.access.journalist_id == kept.id
    assert [a.email for a in reports.acceptances(session, kept.id)] == ["alice.kept@a.example"]

    clean = person(session, "bob.kept@b.example")
    merge_journalists(session, keep_id=clean.id, duplicate_id=world.bob.id)
    assert services.standing_of(session, clean.id, now).standing is Standing.PROBATION
    from distributor.errors import NotFound

    with pytest.raises(NotFound):
        room.look(session, settings, bob_token, None, now)
