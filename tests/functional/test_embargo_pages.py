"""The embargo room through the web: the journalist's link, staff pages, CSV and API."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.db import utcnow
from distributor.embargo import tokens
from distributor.embargo.models import AccessEvent, AccessEventKind, EmbargoStanding, Standing
from distributor.mail.transport import InMemoryTransport
from distributor.releases.media import PHOTO_WIDTHS
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support.embargo import embargoed_world
from tests.support.forms import csrf_token

BODY = "New flood gates on Quay Street"


def _room(settings: Settings, world, journalist) -> str:
    return f"/embargo/{tokens.room_token(settings, world.release.id, journalist.id)}"


def _enter(client: FlaskClient, path: str, *, accept: bool = True) -> None:
    token = csrf_token(client, path)
    data = {"csrf_token": token, **({"accept": "yes"} if accept else {})}
    response = client.post(f"{path}/enter", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)


def test_a_journalist_accepts_the_terms_and_uses_the_room_in_one_browser_only(
    app: Flask, client: FlaskClient, session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=True)
    session.commit()
    path = _room(settings, world, world.alice)
    attachment = world.release.attachments[0]

    door = client.get(path)
    html = door.get_data(as_text=True)
    assert door.status_code == 200 and "Embargo terms" in html and BODY not in html
    assert door.headers["Cache-Control"] == "private, no-store"
    assert "noindex" in door.headers["X-Robots-Tag"]
    assert 'property="og:' not in html.split("</head>")[0].replace('og:site_name"', "")
    # Downloads clicked from the mail before entering lead to the door.
    download = f"{path}/attachments/{attachment.id}/{attachment.filename}"
    assert client.get(download).status_code == 303

    token = csrf_token(client, path)
    refused = client.post(f"{path}/enter", data={"csrf_token": token}, follow_redirects=True)
    assert "Tick the box" in refused.get_data(as_text=True)
    _enter(client, path)
    room = client.get(path).get_data(as_text=True)
    assert BODY in room and world.release.title in room
    assert world.release.preview_token not in room
    photo = client.get(f"{path}/photo/web.jpg")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert photo.headers["Cache-Control"] == "private, no-store"
    assert client.get(download).status_code == 200

    logged = session.scalars(
        select(AccessEvent.kind).where(AccessEvent.journalist_id == world.alice.id)
    ).all()
    assert AccessEventKind.ROOM_VIEW in logged and AccessEventKind.DOWNLOAD in logged
    assert AccessEventKind.PHOTO in logged and AccessEventKind.TERMS_ACCEPTED in logged

    # The same link in another browser: no content, an offer to mail the owner.
    other = app.test_client()
    elsewhere = other.get(path).get_data(as_text=True)
    assert BODY not in elsewhere and "already open in another browser" in elsewhere
    assert other.get(f"{path}/photo/web.jpg").status_code == 404
    assert other.get(download).status_code == 303  # to the door, which says the same

    # Carol's browser (her own room entered) opening Alice's link: refused.
    carol = app.test_client()
    _enter(carol, _room(settings, world, world.carol))
    foreign = carol.get(path)
    assert foreign.status_code == 403 and BODY not in foreign.get_data(as_text=True)


def test_nothing_embargoed_is_reachable_without_a_personal_link(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    session.commit()
    release = world.release
    attachment = release.attachments[0]
    photo = f"/media/photos/{release.photo_key}-{PHOTO_WIDTHS['web']}.jpg"
    assert client.get(photo).status_code == 404
    assert client.get(f"/media/photos/{release.photo_key}-600.jpg").status_code == 404
    public_file = f"/releases/{release.slug}/attachments/{attachment.id}/{attachment.filename}"
    assert client.get(public_file).status_code == 404
    page = client.get(f"/releases/{release.slug}")
    assert BODY not in page.get_data(as_text=True)
    for path in ("/", "/feed.atom", "/sitemap.xml", f"/?q={release.title.split()[0]}"):
        assert release.title not in client.get(path).get_data(as_text=True), path
    assert client.get("/api/releases").status_code == 401
    # A made-up or cut-down token names nothing.
    good = _room(settings, world, world.alice)
    assert client.get(good[:-1] + ("A" if good[-1] != "A" else "B")).status_code == 404
    assert client.get(_room(settings, world, world.bob)).status_code == 404  # skipped


def test_at_the_lift_every_link_leads_to_the_public_page(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    session.commit()
    path = _room(settings, world, world.alice)
    _enter(client, path, accept=False)
    release = world.release
    release.embargo_until = utcnow() - dt.timedelta(minutes=1)
    release.published_at = release.embargo_until
    session.commit()
    for browser in (client, client.application.test_client()):
        response = browser.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].endswith(f"/releases/{release.slug}")
    photo = client.get(f"{path}/photo/web.jpg")
    assert photo.status_code == 302 and "/media/photos/" in photo.headers["Location"]
    assert client.get(photo.headers["Location"]).status_code == 200
    attachment = release.attachments[0]
    moved = client.get(f"{path}/attachments/{attachment.id}/{attachment.filename}")
    assert moved.status_code == 302
    assert moved.headers["Location"].endswith(
        f"/releases/{release.slug}/attachments/{attachment.id}/{attachment.filename}"
    )


def test_staff_see_who_received_accepted_and_opened_and_can_revoke(
    app: Flask,
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    world = embargoed_world(session, settings, requires_terms=True)
    session.commit()
    journalist = app.test_client()
    alice_path = _room(settings, world, world.alice)
    _enter(journalist, alice_path)
    journalist.get(alice_path)
    logged_in(Role.EDITOR)
    base = f"/staff/releases/{world.release.id}/embargo"
    page = client.get(base).get_data(as_text=True)
    assert world.alice.email in page and world.carol.email in page
    assert world.bob.email not in page
    assert "v1" in page  # Alice accepted version 1

    rooms_csv = client.get(f"{base}/rooms.csv").get_data(as_text=True)
    assert world.alice.email in rooms_csv and "accepted_at" in rooms_csv
    assert "room_view" in client.get(f"{base}/log.csv").get_data(as_text=True)
    assert world.alice.email in client.get("/staff/embargo/acceptances.csv").get_data(as_text=True)
    assert world.bob.email in client.get("/staff/embargo/standings.csv").get_data(as_text=True)

    token = csrf_token(client, base)
    revoked = client.post(
        f"{base}/revoke", data={"csrf_token": token, "journalist_id": world.alice.id}
    )
    assert revoked.status_code == 302
    assert journalist.get(alice_path).status_code == 410
    client.post(f"{base}/restore", data={"csrf_token": token, "journalist_id": world.alice.id})
    assert journalist.get(alice_path).status_code == 200
    client.post(f"{base}/revoke", data={"csrf_token": token})
    assert journalist.get(alice_path).status_code == 410


def test_a_press_officer_sees_the_rooms_but_cannot_revoke(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    world = embargoed_world(session, settings)
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    base = f"/staff/releases/{world.release.id}/embargo"
    token = csrf_token(client, base)
    assert client.post(f"{base}/revoke", data={"csrf_token": token}).status_code == 403
    assert client.get(f"{base}/rooms.csv").status_code == 403


def test_recording_a_breach_is_one_action(
    app: Flask,
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    session.commit()
    journalist = app.test_client()
    path = _room(settings, world, world.carol)
    _enter(journalist, path, accept=False)
    logged_in(Role.EDITOR)
    page = f"/staff/journalists/{world.carol.id}/embargo"
    token = csrf_token(client, page)
    done = client.post(
        f"{page}/breach",
        data={"csrf_token": token, "release_id": world.release.id, "note": "Tweeted at 07:00"},
        follow_redirects=True,
    )
    html = done.get_data(as_text=True)
    assert "1 open embargo link revoked" in html and "On probation until" in html
    assert journalist.get(path).status_code == 410
    session.expire_all()
    standing = session.get(EmbargoStanding, world.carol.id)
    assert standing is not None and standing.standing is Standing.PROBATION


def test_the_send_page_says_who_is_left_out_under_embargo(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    world = embargoed_world(session, settings, freeze=False)
    session.delete(world.send)
    session.commit()
    logged_in(Role.EDITOR)
    html = client.get(f"/staff/releases/{world.release.id}/send").get_data(as_text=True)
    assert "1 on embargo probation" in html


def test_editors_write_versioned_terms(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    for n, text in enumerate(("First terms.", "Second terms."), start=1):
        token = csrf_token(client, "/staff/embargo/terms")
        done = client.post(
            "/staff/embargo/terms",
            data={"csrf_token": token, "summary": f"Summary {n}", "body": text},
            follow_redirects=True,
        )
        assert f"version {n} published" in done.get_data(as_text=True)


def test_a_withdrawn_releases_preview_link_is_dead(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings)
    session.commit()
    preview = f"/preview/{world.release.preview_token}"
    assert client.get(preview).status_code == 200
    world.release.status = ReleaseStatus.WITHDRAWN
    session.commit()
    assert client.get(preview).status_code == 404
    attachment = world.release.attachments[0]
    assert (
        client.get(f"{preview}/attachments/{attachment.id}/{attachment.filename}").status_code
        == 404
    )


def test_the_api_gives_rooms_log_acceptances_and_standings_to_editors(
    client: FlaskClient,
    session: Session,
    settings: Settings,
    make_user: Callable[..., User],
    app: Flask,
) -> None:
    world = embargoed_world(session, settings)
    _, editor = create_token(session, make_user(Role.EDITOR), "embargo")
    _, officer = create_token(session, make_user(Role.PRESS_OFFICER), "embargo")
    session.commit()
    _enter(app.test_client(), _room(settings, world, world.alice))
    headers = {"Authorization": f"Bearer {editor}"}
    rooms = client.get(f"/api/embargo/releases/{world.release.id}/rooms", headers=headers).json
    assert {r["email"] for r in rooms["items"]} == {world.alice.email, world.carol.email}
    log = client.get(f"/api/embargo/releases/{world.release.id}/log", headers=headers).json
    assert any(e["kind"] == "terms_accepted" for e in log["items"])
    accepted = client.get("/api/embargo/acceptances", headers=headers).json
    assert [a["email"] for a in accepted["items"]] == [world.alice.email]
    standings = client.get("/api/embargo/standings", headers=headers).json
    assert standings["items"][0]["standing"] == "probation"
    forbidden = client.get("/api/embargo/standings", headers={"Authorization": f"Bearer {officer}"})
    assert forbidden.status_code == 403


def _send_notices(session: Session, settings: Settings) -> InMemoryTransport:
    from distributor.embargo import notices
    from distributor.mail.rendering import EmailRenderer

    transport = InMemoryTransport()

    class _Same:
        def __enter__(self) -> Session:
            return session

        def __exit__(self, *exc: object) -> None:
            session.commit()

    notices.send_queued(
        _Same, settings=settings, renderer=EmailRenderer(), transport=transport, now=utcnow
    )
    return transport


def test_a_new_browser_gets_the_room_only_through_the_owners_mailbox(
    app: Flask, client: FlaskClient, session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    session.commit()
    path = _room(settings, world, world.alice)
    _enter(client, path, accept=False)
    laptop = app.test_client()
    token = csrf_token(laptop, path)
    asked = laptop.post(f"{path}/new-browser", data={"csrf_token": token})
    assert "Check your mail" in asked.get_data(as_text=True)
    sent = _send_notices(session, settings).sent
    assert [m.recipients for m in sent] == [[world.alice.email]]
    text = _decoded_text(sent[0].message)
    link = re.search(r"http://localhost(/embargo/\S+/browser/\S+)", text)
    assert link is not None
    button = laptop.get(link.group(1))
    assert button.status_code == 200 and BODY not in button.get_data(as_text=True)
    moved = laptop.post(link.group(1), data={"csrf_token": csrf_token(laptop, link.group(1))})
    assert moved.status_code == 303
    assert BODY in laptop.get(path).get_data(as_text=True)
    assert "already open in another browser" in client.get(path).get_data(as_text=True)
    again = laptop.post(link.group(1), data={"csrf_token": csrf_token(laptop, link.group(1))})
    assert again.status_code == 404  # one use


def test_editors_send_a_correction_to_open_rooms(
    app: Flask,
    client: FlaskClient,
    session: Session,
    settings: Settings,
    logged_in: Callable[[Role], User],
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    session.commit()
    journalist = app.test_client()
    path = _room(settings, world, world.alice)
    _enter(journalist, path, accept=False)
    world.release.title = "Sea wall to be raised by 1.5 metres"
    session.commit()
    room_html = journalist.get(path).get_data(as_text=True)
    assert "Updated" in room_html and "Title changed" in room_html
    logged_in(Role.EDITOR)
    base = f"/staff/releases/{world.release.id}/embargo"
    assert "Title changed" in client.get(base).get_data(as_text=True)
    done = client.post(
        f"{base}/correction", data={"csrf_token": csrf_token(client, base)}, follow_redirects=True
    )
    assert "Correction queued for 2 journalists" in done.get_data(as_text=True)
    sent = _send_notices(session, settings).sent
    assert sorted(m.recipients[0] for m in sent) == sorted([world.alice.email, world.carol.email])
    assert all("Title changed" in _decoded_text(m.message) for m in sent)


def _decoded_text(raw: bytes) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.default)
    return "\n".join(
        part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
    )
