"""Staff audience pages: journalists, beats, media lists, suppressions, merges, erasure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience import merge, preferences, services
from distributor.audience.models import (
    Beat,
    Journalist,
    JournalistMerge,
    MediaList,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from distributor.delivery.models import Delivery
from distributor.errors import Forbidden, ValidationFailed
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token


def test_staff_pages_render_for_every_role(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    j = f.journalist(session, email="page@example.org", name="Pat Page")
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    for path in (
        "/staff/audience/journalists",
        "/staff/audience/journalists?q=pat&status=confirmed&engagement=engaged",
        "/staff/audience/journalists?engagement=unengaged",
        f"/staff/audience/journalists/{j.id}",
        "/staff/audience/beats",
        "/staff/audience/lists",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
    home = client.get("/staff/audience/journalists").get_data(as_text=True)
    assert "Pat Page" in home and ">Journalists<" in home and ">Media lists<" in home
    # Suppressions are the editors' (issue 11): not offered, and refused if typed in.
    assert ">Suppressions<" not in home and ">Dev inbox<" not in home
    assert client.get("/staff/audience/suppressions").status_code == 403
    # Press officers look but do not edit beats or journalists.
    token = csrf_token(client, "/staff/audience/beats")
    assert client.post("/staff/audience/beats", data={"csrf_token": token}).status_code == 403
    assert client.get("/staff/audience/journalists/new").status_code == 403


def test_search_and_filters(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    climate = f.beat(session, "Climate")
    a = f.journalist(session, email="alpha@example.org", name="Alpha Reporter")
    b = f.journalist(session, email="beta@example.net", name="Beta Writer")
    a.outlet = services.get_or_create_outlet(session, "Tide Weekly")
    session.add(
        Subscription(journalist_id=a.id, beat_id=climate.id, status=SubscriptionStatus.CONFIRMED)
    )
    b.is_paused = True
    services.suppress(session, "beta@example.net", SuppressionReason.COMPLAINT)
    session.commit()
    logged_in(Role.EDITOR)

    def names(query: str) -> set[str]:
        page = client.get(f"/staff/audience/journalists?{query}").get_data(as_text=True)
        return {n for n in ("Alpha Reporter", "Beta Writer") if n in page}

    assert names("q=tide") == {"Alpha Reporter"}
    assert names(f"beat={climate.id}") == {"Alpha Reporter"}
    assert names(f"outlet={a.outlet_id}") == {"Alpha Reporter"}
    assert names("status=paused") == {"Beta Writer"}
    assert names("status=suppressed") == {"Beta Writer"}
    assert names("status=confirmed") == {"Alpha Reporter"}


def test_editor_manages_beats_journalists_and_lists(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    logged_in(Role.EDITOR)
    token = csrf_token(client, "/staff/audience/beats")
    r = client.post(
        "/staff/audience/beats",
        data={"csrf_token": token, "name": "Ports & Shipping", "is_public": "y"},
    )
    assert r.status_code == 302
    beat = session.scalar(select(Beat).where(Beat.slug == "ports-shipping"))
    assert beat is not None and beat.is_public
    dup = client.post("/staff/audience/beats", data={"csrf_token": token, "name": "Ports Shipping"})
    assert dup.status_code == 200 and "already uses the slug" in dup.get_data(as_text=True)

    token = csrf_token(client, "/staff/audience/journalists/new")
    r = client.post(
        "/staff/audience/journalists/new",
        data={
            "csrf_token": token,
            "email": "New.Person@Example.org",
            "name": "New Person",
            "outlet": "Bay FM",
            "lawful_basis": "legitimate_interest",
        },
    )
    assert r.status_code == 302
    person = services.find_journalist(session, "new.person@example.org")
    assert person is not None and person.outlet is not None and person.outlet.name == "Bay FM"
    again = client.post(
        "/staff/audience/journalists/new",
        data={"csrf_token": token, "email": "new.person@example.org", "lawful_basis": "consent"},
    )
    assert "already in the audience" in again.get_data(as_text=True)

    token = csrf_token(client, "/staff/audience/lists")
    r = client.post(
        "/staff/audience/lists",
        data={"csrf_token": token, "name": "Embargo-trusted national desks"},
    )
    assert r.status_code == 302
    media_list = session.scalar(
        select(MediaList).where(MediaList.name == "Embargo-trusted national desks")
    )
    assert media_list is not None
    list_url = f"/staff/audience/lists/{media_list.id}"
    token = csrf_token(client, list_url)
    r = client.post(
        list_url,
        data={
            "csrf_token": token,
            "members-emails": "new.person@example.org\nnobody@example.org",
            "members-submit": "Add",
        },
    )
    assert r.status_code == 302
    page = client.get(list_url).get_data(as_text=True)
    assert "New Person" in page and "nobody@example.org" in page  # flashed as not found
    session.expire_all()
    assert [j.id for j in media_list.journalists] == [person.id]
    r = client.post(f"{list_url}/members/{person.id}/remove", data={"csrf_token": token})
    session.expire_all()
    assert media_list.journalists == []


def test_do_not_contact_is_lifted_only_by_admins(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    session: Session,
    make_user: Callable[..., User],
) -> None:
    editor = logged_in(Role.EDITOR)
    token = csrf_token(client, "/staff/audience/suppressions")
    client.post(
        "/staff/audience/suppressions",
        data={
            "csrf_token": token,
            "email": "Stop@Example.org",
            "reason": "do_not_contact",
            "note": "asked by phone",
        },
    )
    entry = session.scalar(select(Suppression).where(Suppression.address == "stop@example.org"))
    assert (
        entry is not None
        and entry.reason == SuppressionReason.DO_NOT_CONTACT
        and entry.created_by_id == editor.id
    )
    r = client.post(
        f"/staff/audience/suppressions/{entry.id}/lift",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "Only an admin" in r.get_data(as_text=True)
    assert services.is_suppressed(session, "STOP@example.org")
    with pytest.raises(Forbidden):
        services.lift_suppression(session, "stop@example.org", by=editor, justification="x")
    admin = make_user(Role.ADMIN)
    services.lift_suppression(session, "stop@example.org", by=admin, justification="by phone")
    assert not services.is_suppressed(session, "stop@example.org")


def test_suppress_is_idempotent_and_dnc_wins(session: Session) -> None:
    first = services.suppress(session, "x@example.org", SuppressionReason.HARD_BOUNCE)
    second = services.suppress(session, "X@example.org", SuppressionReason.COMPLAINT)
    assert first.id == second.id and second.reason == SuppressionReason.HARD_BOUNCE
    third = services.suppress(session, "x@example.org", SuppressionReason.DO_NOT_CONTACT)
    assert third.id == first.id and third.reason == SuppressionReason.DO_NOT_CONTACT
    assert services.address_hash("X@Example.org ") == services.address_hash("x@example.org")


def test_merge_moves_everything_in_one_transaction(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session, settings: Settings
) -> None:
    climate, fish, housing = (
        f.beat(session, "Climate"),
        f.beat(session, "Fish"),
        f.beat(session, "Housing"),
    )
    keep = f.journalist(session, email="jo@example.org", name="Jo")
    dup = f.journalist(session, email="jo.smith@example.net", name="Jo Smith")
    dup.phone = "+44 1"
    session.add_all(
        [
            Subscription(
                journalist_id=keep.id, beat_id=climate.id, status=SubscriptionStatus.CONFIRMED
            ),
            Subscription(
                journalist_id=dup.id, beat_id=climate.id, status=SubscriptionStatus.UNSUBSCRIBED
            ),
            Subscription(
                journalist_id=dup.id,
                beat_id=fish.id,
                status=SubscriptionStatus.CONFIRMED,
                consent_method="double_opt_in",
            ),
            Subscription(
                journalist_id=keep.id, beat_id=housing.id, status=SubscriptionStatus.PENDING
            ),
            Subscription(
                journalist_id=dup.id,
                beat_id=housing.id,
                status=SubscriptionStatus.CONFIRMED,
                consent_method="preference_centre",
            ),
        ]
    )
    media_list = MediaList(name="Merge list")
    media_list.journalists.append(dup)
    session.add(media_list)
    f.organisation(session, settings)
    shared, only_dup = f.release(session, title="Shared"), f.release(session, title="Only dup")
    f.send_with_delivery(session, shared, keep)
    dup_shared = f.send_with_delivery(session, shared, dup)
    moved = f.send_with_delivery(session, only_dup, dup)
    session.commit()
    dup_id = dup.id
    logged_in(Role.EDITOR)
    url = f"/staff/audience/journalists/{keep.id}"
    r = client.post(
        f"{url}/merge",
        data={"csrf_token": csrf_token(client, url), "duplicate": "JO.SMITH@example.net"},
    )
    assert r.status_code == 302
    session.expire_all()
    assert session.get(Journalist, dup_id) is None
    status = {s.beat_id: (s.status, s.consent_method) for s in keep.subscriptions}
    assert status[climate.id][0] == SubscriptionStatus.UNSUBSCRIBED  # an unsubscribe wins
    assert status[fish.id] == (SubscriptionStatus.CONFIRMED, "double_opt_in")
    assert status[housing.id] == (SubscriptionStatus.CONFIRMED, "preference_centre")
    assert [j.id for j in media_list.journalists] == [keep.id]
    assert session.get(Delivery, moved.id).journalist_id == keep.id
    assert session.get(Delivery, dup_shared.id).journalist_id is None
    assert keep.phone == "+44 1"
    log = session.scalar(select(JournalistMerge).where(JournalistMerge.kept_id == keep.id))
    assert (
        log is not None and log.merged_email == "jo.smith@example.net" and log.moved_deliveries == 1
    )


def test_failed_merge_changes_nothing(session: Session) -> None:
    keep = f.journalist(session, email="k@example.org")
    session.commit()
    with pytest.raises(ValidationFailed, match="two different records"):
        merge.merge_journalists(session, keep_id=keep.id, duplicate_id=keep.id)
    session.rollback()
    assert session.get(Journalist, keep.id) is not None


def test_erasure_anonymises_delivery_history(session: Session, settings: Settings) -> None:
    f.organisation(session, settings)
    person = f.journalist(session, email="erase.me@example.org")
    delivery = f.send_with_delivery(session, f.release(session), person)
    services.suppress(session, "erase.me@example.org", SuppressionReason.UNSUBSCRIBED_ALL)
    session.commit()
    assert preferences.erase_journalist(session, person.id)
    session.commit()
    session.expire_all()
    row = session.get(Delivery, delivery.id)
    assert row is not None and row.journalist_id is None and row.email is None
    entry = services.find_suppression(session, "erase.me@example.org")
    assert entry is not None and entry.address is None and entry.reason == SuppressionReason.ERASED
    assert services.is_suppressed(session, "Erase.Me@example.org")


def test_journalist_page_shows_consent_suppression_and_history(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session, settings: Settings
) -> None:
    f.organisation(session, settings)
    climate = f.beat(session, "Climate")
    person = f.journalist(session, email="shown@example.org", name="Shown Person")
    session.add(
        Subscription(
            journalist_id=person.id,
            beat_id=climate.id,
            status=SubscriptionStatus.CONFIRMED,
            consent_method="double_opt_in",
            consent_text_version="2026-11-24.1",
            consent_at=person.created_at,
            consent_ip_hash="ab" * 32,
        )
    )
    f.send_with_delivery(session, f.release(session, title="Sea wall release"), person)
    services.suppress(session, "shown@example.org", SuppressionReason.HARD_BOUNCE, note="550 5.1.1")
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    page = client.get(f"/staff/audience/journalists/{person.id}").get_data(as_text=True)
    for text in ("double_opt_in", "2026-11-24.1", "hard bounce", "Sea wall release", "abababab"):
        assert text in page, text


def test_engagement_filter_counts_only_human_reactions(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session, settings: Settings
) -> None:
    from distributor.db import utcnow
    from distributor.tracking.models import EventKind, TrackingEvent

    f.organisation(session, settings)
    release = f.release(session)
    people = {
        name: f.journalist(session, email=f"{name}@example.org", name=f"Eng {name}")
        for name in ("human", "machine", "silent", "never")
    }
    for name in ("human", "machine", "silent"):
        d = f.send_with_delivery(session, release, people[name])
        d.sent_at = utcnow()
        if name != "silent":
            session.add(
                TrackingEvent(
                    event_uid=f"evt-{name}",
                    delivery_id=d.id,
                    release_id=release.id,
                    journalist_id=people[name].id,
                    kind=EventKind.OPEN,
                    occurred_at=utcnow(),
                    is_machine=name == "machine",
                )
            )
    session.commit()
    logged_in(Role.PRESS_OFFICER)

    def names(engagement: str) -> set[str]:
        page = client.get(f"/staff/audience/journalists?engagement={engagement}&q=eng")
        return {n for n in people if f"Eng {n}<" in page.get_data(as_text=True)}

    assert names("engaged") == {"human"}
    assert names("unengaged") == {"machine", "silent"}
    assert names("") == set(people)


def test_engaged_condition_forms_select_the_same_journalists(
    session: Session, settings: Settings
) -> None:
    """The list counts its matches with the set form of "engaged" and walks pages with the
    EXISTS form: both must pick the same people (two human events, an old one, a machine's
    and an event whose journalist was erased)."""
    import datetime as dt

    from distributor.audience.models import Journalist
    from distributor.db import utcnow
    from distributor.reports.engagement import ENGAGEMENT_WINDOW, engagement_condition
    from distributor.tracking.models import EventKind, TrackingEvent

    f.organisation(session, settings)
    release = f.release(session)
    recent, old = utcnow(), utcnow() - ENGAGEMENT_WINDOW - dt.timedelta(days=1)
    events = {"twice": [recent, recent], "old": [old], "machine": [recent], "none": [recent]}
    for name, times in events.items():
        person = f.journalist(session, email=f"{name}@example.org", name=name)
        d = f.send_with_delivery(session, release, person)
        for i, at in enumerate(times):
            session.add(
                TrackingEvent(
                    event_uid=f"evt-{name}-{i}",
                    delivery_id=d.id,
                    release_id=release.id,
                    journalist_id=None if name == "none" else person.id,
                    kind=EventKind.OPEN,
                    occurred_at=at,
                    is_machine=name == "machine",
                )
            )
    session.flush()

    def engaged(every_match: bool) -> set[str]:
        condition = engagement_condition("engaged", every_match=every_match)
        assert condition is not None
        return set(session.scalars(select(Journalist.name).where(condition)))

    assert engaged(every_match=True) == engaged(every_match=False) == {"twice"}
