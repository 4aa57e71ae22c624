"""Staff choose the media lists a release goes to: compose page, send page and API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.audience.models import Journalist, MediaList, media_list_members
from distributor.db import utcnow
from distributor.delivery.models import Delivery, Send, SendStatus
from distributor.delivery.recipients import freeze_recipients
from distributor.releases.models import Release, ReleaseStatus
from distributor.settings import Settings
from tests.functional.test_send_controls import FakeResolver
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token


@pytest.fixture()
def desks(session: Session) -> MediaList:
    """A media list of two journalists who follow no beat of the release."""
    desks = MediaList(name="National desks", description="")
    session.add(desks)
    session.flush()
    for n in range(2):
        email = f"desk{n}@paper.example"
        journalist = Journalist(email=email, email_normalized=email, name=f"Desk {n}")
        session.add(journalist)
        session.flush()
        session.execute(
            media_list_members.insert().values(media_list_id=desks.id, journalist_id=journalist.id)
        )
    session.commit()
    return desks


@pytest.fixture()
def release(app: Flask, session: Session, settings: Settings) -> Release:
    app.extensions["distributor.dns_resolver"] = FakeResolver(None, reachable=False)
    f.organisation(session, settings)
    r = f.release(session)
    r.status = ReleaseStatus.APPROVED
    f.audience(session, r, count=3)
    session.commit()
    return r


def test_the_send_page_picker_adds_the_list_to_the_audience_and_the_send(
    client: FlaskClient,
    session: Session,
    logged_in: Callable[[Role], User],
    release: Release,
    desks: MediaList,
) -> None:
    logged_in(Role.EDITOR)
    page = client.get(f"/staff/releases/{release.id}/send").get_data(as_text=True)
    assert 'data-testid="audience-total">3<' in page
    assert "Media lists to send to" in page and "National desks" in page

    token = csrf_token(client, f"/staff/releases/{release.id}/send")
    response = client.post(
        f"/staff/releases/{release.id}/media-lists",
        data={"csrf_token": token, "media_list_ids": [str(desks.id)]},
    )
    assert response.status_code == 302
    page = client.get(f"/staff/releases/{release.id}/send").get_data(as_text=True)
    assert 'data-testid="audience-total">5<' in page  # the two desks join the three
    assert "<td>National desks</td><td>2</td>" in page

    # A send freezes the list's members with the beats' subscribers.
    session.expire_all()
    send = Send(release_id=release.id, status=SendStatus.RUNNING)
    session.add(send)
    session.flush()
    assert freeze_recipients(session, send_id=send.id, release_id=release.id, now=utcnow()) == 5
    lists = session.scalars(
        select(Delivery.matched_lists).where(Delivery.release_id == release.id)
    ).all()
    assert lists.count("National desks") == 2


def test_compose_saves_the_chosen_lists(
    client: FlaskClient,
    session: Session,
    logged_in: Callable[[Role], User],
    release: Release,
    desks: MediaList,
) -> None:
    logged_in(Role.EDITOR)
    page = client.get(f"/staff/releases/{release.id}/edit").get_data(as_text=True)
    assert 'id="media-lists"' in page and "National desks" in page
    token = csrf_token(client, f"/staff/releases/{release.id}/edit")
    response = client.post(
        f"/staff/releases/{release.id}/edit",
        data={
            "csrf_token": token,
            "kind_id": str(release.kind_id),
            "title": release.title,
            "summary": release.summary,
            "body_markdown": "Body.",
            "photo_alt": release.photo_alt,
            "media_list_ids": [str(desks.id)],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    session.expire_all()
    assert [m.name for m in session.get(Release, release.id).media_lists] == ["National desks"]


def test_the_api_chooses_lists_and_shows_them(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    release: Release,
    desks: MediaList,
) -> None:
    _, secret = create_token(session, make_user(Role.EDITOR), "lists")
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    listed = client.get("/api/media-lists", headers=headers).json
    assert [m["name"] for m in listed["items"]] == ["National desks"]
    response = client.put(
        f"/api/releases/{release.id}/media-lists",
        json={"media_list_ids": [desks.id]},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    assert response.json["media_lists"] == [{"id": desks.id, "name": "National desks"}]
    assert client.get(f"/api/releases/{release.id}", headers=headers).json["media_lists"] == [
        {"id": desks.id, "name": "National desks"}
    ]
    bad = client.put(
        f"/api/releases/{release.id}/media-lists",
        json={"media_list_ids": [desks.id + 999]},
        headers=headers,
    )
    assert bad.status_code == 422
    assert (
        client.put(
            f"/api/releases/{release.id}/media-lists", json={"media_list_ids": "x"}, headers=headers
        ).status_code
        == 422
    )
