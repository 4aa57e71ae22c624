"""The pixel and click endpoints: no oracle, no open redirect, honest and switchable recording."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience.models import Journalist
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.organisation.models import Organisation
from distributor.organisation.services import ensure_organisation
from distributor.reports.sample import HUMAN_UA, seed_sent_release
from distributor.settings import Settings
from distributor.tracking import classify
from distributor.tracking.fastpath import PIXEL_GIF
from distributor.tracking.models import EventKind, TrackedLink, TrackingEvent
from distributor.tracking.services import classify_pending
from tests.support.forms import csrf_token


def _fresh_delivery(session: Session) -> Delivery:
    release = seed_sent_release(session, recipients=3, prefix="trk")
    delivery = session.scalars(
        select(Delivery).where(Delivery.release_id == release.id).order_by(Delivery.id)
    ).first()
    assert delivery is not None
    delivery.status = DeliveryStatus.SENT
    delivery.sent_at = utcnow() - dt.timedelta(hours=1)
    session.commit()
    return delivery


def _events(session: Session, delivery: Delivery) -> list[TrackingEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(TrackingEvent)
            .where(TrackingEvent.delivery_id == delivery.id)
            .order_by(TrackingEvent.id)
        )
    )


def _link_ids(session: Session, release_id: int) -> list[int]:
    return list(
        session.scalars(
            select(TrackedLink.id)
            .where(TrackedLink.release_id == release_id)
            .order_by(TrackedLink.position)
        )
    )


def test_pixel_is_identical_for_valid_and_invalid_tokens(
    client: FlaskClient, session: Session
) -> None:
    delivery = _fresh_delivery(session)
    valid = client.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    invalid = client.get("/t/o/not-a-real-token.gif", headers={"User-Agent": HUMAN_UA})
    garbage = client.get("/t/o/%3Cscript%3E.gif")
    for response in (valid, invalid, garbage):
        assert response.status_code == 200
        assert response.data == PIXEL_GIF
        assert "no-store" in response.headers["Cache-Control"]
    assert dict(valid.headers) == dict(invalid.headers) == dict(garbage.headers)
    events = _events(session, delivery)
    assert [(e.kind, e.is_machine) for e in events] == [(EventKind.OPEN, False)]


def test_click_redirects_only_to_the_url_registered_for_that_release(
    client: FlaskClient, session: Session
) -> None:
    delivery = _fresh_delivery(session)
    other = seed_sent_release(session, recipients=1, prefix="other")
    session.add(
        TrackedLink(release_id=other.id, position=9, url="https://evil.example/", url_hash="x" * 64)
    )
    session.commit()
    own_link, *_ = _link_ids(session, delivery.release_id)
    foreign_link = session.scalar(
        select(TrackedLink.id).where(TrackedLink.url == "https://evil.example/")
    )

    ok = client.get(f"/t/c/{delivery.verp_token}/{own_link}", headers={"User-Agent": HUMAN_UA})
    assert ok.status_code == 302
    url = session.get(TrackedLink, own_link)
    assert url is not None and ok.headers["Location"] == url.url
    assert "no-store" in ok.headers["Cache-Control"]

    for path in (
        f"/t/c/{delivery.verp_token}/{foreign_link}",
        f"/t/c/{delivery.verp_token}/999999",
        f"/t/c/unknown-token/{own_link}",
        "/t/c/x/1?url=https://evil.example/",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "evil.example" not in response.headers.get("Location", "")
    clicks = [e for e in _events(session, delivery) if e.kind == EventKind.CLICK]
    assert [(c.link_id, c.is_machine) for c in clicks] == [(own_link, False)]


def test_head_and_scanner_clicks_are_bots_and_a_burst_over_every_link_is_flagged_at_flush(
    client: FlaskClient, session: Session
) -> None:
    delivery = _fresh_delivery(session)
    links = _link_ids(session, delivery.release_id)
    client.head(f"/t/c/{delivery.verp_token}/{links[0]}", headers={"User-Agent": HUMAN_UA})
    client.get(
        f"/t/c/{delivery.verp_token}/{links[0]}", headers={"User-Agent": "python-requests/2.32"}
    )
    for link in links:  # a "browser" opening every link within a second
        client.get(f"/t/c/{delivery.verp_token}/{link}", headers={"User-Agent": HUMAN_UA})
    before = _events(session, delivery)
    assert [e.machine_reason for e in before[:2]] == [classify.HEAD, classify.SCANNER_UA]
    assert not any(e.is_machine for e in before[2:])  # one at a time, each looks human

    classify_pending(session)
    session.commit()
    after = _events(session, delivery)
    assert all(e.is_machine for e in after)
    assert {e.machine_reason for e in after[2:]} == {classify.ALL_LINKS}
    assert all(e.classified_at is not None for e in after)


def test_nothing_is_recorded_when_the_org_or_the_journalist_opted_out(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    delivery = _fresh_delivery(session)
    journalist = session.get(Journalist, delivery.journalist_id)
    assert journalist is not None
    journalist.is_tracking_allowed = False
    session.commit()
    client.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    assert _events(session, delivery) == []

    journalist.is_tracking_allowed = True
    ensure_organisation(session, settings).is_tracking_enabled = False
    session.commit()
    client.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    link = _link_ids(session, delivery.release_id)[0]
    assert client.get(f"/t/c/{delivery.verp_token}/{link}").status_code == 302  # links still work
    assert _events(session, delivery) == []


def test_no_ip_address_is_stored(client: FlaskClient, session: Session) -> None:
    delivery = _fresh_delivery(session)
    client.get(
        f"/t/o/{delivery.verp_token}.gif",
        headers={"User-Agent": HUMAN_UA},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    (event,) = _events(session, delivery)
    stored = [str(getattr(event, c.key)) for c in TrackingEvent.__table__.columns]
    assert not any("203.0.113.77" in value for value in stored)


@pytest.mark.usefixtures("app")
def test_admin_switches_tracking_off_and_on(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.ADMIN)
    page = client.get("/staff/tracking")
    assert page.status_code == 200 and b"Turn tracking off" in page.data
    token = csrf_token(client, "/staff/tracking")
    response = client.post("/staff/tracking", data={"csrf_token": token, "enabled": "0"})
    assert response.status_code == 302
    session.expire_all()
    assert session.scalar(select(Organisation.is_tracking_enabled)) is False
    assert session.scalar(select(func.count()).select_from(Organisation)) == 1
    assert b"Turn tracking on" in client.get("/staff/tracking").data


def test_editors_cannot_switch_tracking(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    assert client.get("/staff/tracking").status_code == 403


def test_head_on_the_pixel_is_a_machine_open(client: FlaskClient, session: Session) -> None:
    delivery = _fresh_delivery(session)
    response = client.head(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 200 and response.headers["Content-Length"] == "43"
    (event,) = _events(session, delivery)
    assert (event.is_machine, event.machine_reason) == (True, classify.HEAD)


def test_the_flask_views_behind_the_fast_path_answer_the_same(app: Flask, session: Session) -> None:
    from werkzeug.test import Client

    from distributor.tracking.fastpath import TrackingFastPath

    assert isinstance(app.wsgi_app, TrackingFastPath)
    fast = app.test_client()
    inner = Client(app.wsgi_app.wrapped)  # the Flask app without the middleware
    delivery = _fresh_delivery(session)
    link = _link_ids(session, delivery.release_id)[0]
    pixel_fast = fast.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    pixel_flask = inner.get(f"/t/o/{delivery.verp_token}.gif", headers={"User-Agent": HUMAN_UA})
    assert pixel_fast.data == pixel_flask.data == PIXEL_GIF
    assert pixel_fast.headers["Cache-Control"] == pixel_flask.headers["Cache-Control"]
    click_fast = fast.get(f"/t/c/{delivery.verp_token}/{link}", headers={"User-Agent": HUMAN_UA})
    click_flask = inner.get(f"/t/c/{delivery.verp_token}/{link}", headers={"User-Agent": HUMAN_UA})
    assert click_fast.status_code == click_flask.status_code == 302
    assert click_fast.headers["Location"] == click_flask.headers["Location"]
    kinds = [e.kind for e in _events(session, delivery)]
    assert kinds == [EventKind.OPEN, EventKind.OPEN, EventKind.CLICK, EventKind.CLICK]
