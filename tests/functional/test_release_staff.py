"""Staff release pages through the Flask test client: compose, submit, review, roles."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from distributor.accounts.models import Role, User
from distributor.db import utcnow
from distributor.releases.models import Release, ReleaseStatus, ReleaseTransition
from tests.support.forms import csrf_token
from tests.support.releases import beat, image_bytes, kind, make_release


def _compose(client: FlaskClient, session: Session, **overrides: object) -> TestResponse:
    token = csrf_token(client, "/staff/releases/new")
    climate = beat(session)
    data: dict[str, object] = {
        "csrf_token": token,
        "kind_id": str(kind(session, "Report").id),
        "title": "Tide gauges switched on",
        "summary": "Twelve gauges now report every five minutes.",
        "body_markdown": "Intro.\n\n<script>alert(1)</script>\n\n**Bold claim.**",
        "beat_ids": [str(climate.id)],
        "photo": (io.BytesIO(image_bytes(1600, 1000)), "gauge.png"),
        "photo_alt": "A tide gauge on a post",
        "photo_credit": "Jo Bloggs",
        "photo_caption": "The gauge at Crannock.",
        "attachments": [(io.BytesIO(b"%PDF-1.4 report"), "report.pdf")],
    }
    data.update(overrides)
    return client.post("/staff/releases/new", data=data, content_type="multipart/form-data")


def test_a_press_officer_writes_a_release_and_submits_it(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    officer = logged_in(Role.PRESS_OFFICER)
    response = _compose(client, session)
    assert response.status_code == 302, response.get_data(as_text=True)
    release = session.scalar(select(Release).where(Release.title == "Tide gauges switched on"))
    assert release is not None
    assert release.status is ReleaseStatus.DRAFT
    assert release.created_by_id == officer.id
    assert release.photo_key and release.photo_alt == "A tide gauge on a post"
    assert "<strong>Bold claim.</strong>" in release.body_html
    assert "<script" not in release.body_html
    assert [a.filename for a in release.attachments] == ["report.pdf"]

    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert "Submit for review" in page
    assert "Approve" not in page  # press officers do not approve

    token = csrf_token(client, f"/staff/releases/{release.id}")
    response = client.post(
        f"/staff/releases/{release.id}/transition",
        data={"csrf_token": token, "to": "in_review", "comment": "Ready"},
    )
    assert response.status_code == 302
    session.refresh(release)
    assert release.status is ReleaseStatus.IN_REVIEW
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert "Draft → In review" in page and "Ready" in page


def test_a_photo_without_alt_text_or_an_unreadable_photo_is_refused(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    response = _compose(client, session, photo_alt="")
    assert response.status_code == 422
    assert "alt text" in response.get_data(as_text=True)
    response = _compose(client, session, photo=(io.BytesIO(b"not an image"), "x.jpg"))
    assert response.status_code == 422
    assert "not an image" in response.get_data(as_text=True)
    assert session.scalar(select(Release).where(Release.title == "Tide gauges switched on")) is None


def test_a_press_officer_cannot_approve_through_the_form(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.commit()
    token = csrf_token(client, f"/staff/releases/{release.id}")
    response = client.post(
        f"/staff/releases/{release.id}/transition",
        data={"csrf_token": token, "to": "approved"},
        follow_redirects=True,
    )
    assert "may not move a release" in response.get_data(as_text=True)
    session.refresh(release)
    assert release.status is ReleaseStatus.IN_REVIEW


def test_an_editor_approves_with_an_embargo_in_the_organisations_time_zone(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    editor = logged_in(Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.commit()
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert "Approve" in page and "Send back" in page
    token = csrf_token(client, f"/staff/releases/{release.id}")
    # 10:00 in London in July is 09:00 UTC (BST).
    year = utcnow().year + 1
    response = client.post(
        f"/staff/releases/{release.id}/transition",
        data={"csrf_token": token, "to": "approved", "embargo_until": f"{year}-07-01T10:00"},
    )
    assert response.status_code == 302
    session.refresh(release)
    assert release.status is ReleaseStatus.APPROVED
    assert release.embargo_until == dt.datetime(year, 7, 1, 9, 0, tzinfo=dt.UTC)
    assert release.published_at is None
    entry = session.scalars(
        select(ReleaseTransition)
        .where(ReleaseTransition.release_id == release.id)
        .order_by(ReleaseTransition.id.desc())
    ).first()
    assert entry is not None
    assert entry.by_id == editor.id and entry.to_status is ReleaseStatus.APPROVED


def test_sending_back_without_a_comment_is_refused_with_a_message(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.commit()
    token = csrf_token(client, f"/staff/releases/{release.id}")
    response = client.post(
        f"/staff/releases/{release.id}/transition",
        data={"csrf_token": token, "to": "draft", "comment": ""},
        follow_redirects=True,
    )
    assert "comment is required" in response.get_data(as_text=True)
    session.refresh(release)
    assert release.status is ReleaseStatus.IN_REVIEW


def test_versions_can_be_compared(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    release = make_release(session, title="First title", body="Old line.")
    session.commit()
    token = csrf_token(client, f"/staff/releases/{release.id}/edit")
    response = client.post(
        f"/staff/releases/{release.id}/edit",
        data={
            "csrf_token": token,
            "kind_id": str(release.kind_id),
            "title": "Second title",
            "summary": release.summary,
            "body_markdown": "New line.",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(f"/staff/releases/{release.id}/versions?a=1&b=2").get_data(as_text=True)
    assert re.search(r"<del>\s*# First title\s*</del>", page)
    assert re.search(r"<ins>\s*# Second title\s*</ins>", page)
    assert "<del>Old line.</del>" in page and "<ins>New line.</ins>" in page


def test_live_preview_returns_sanitised_html(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    token = csrf_token(client, "/staff/releases/new")
    response = client.post(
        "/staff/releases/preview-markdown",
        data={"body_markdown": "**hi** <script>x()</script>"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200
    html = response.get_json()["html"]
    assert "<strong>hi</strong>" in html and "<script" not in html


def test_release_list_filters_by_status_and_search(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    make_release(session, title="Saltmarsh restored", status=ReleaseStatus.APPROVED)
    make_release(session, title="Ferry timetable statement", status=ReleaseStatus.DRAFT)
    session.commit()
    page = client.get("/staff/releases/?status=approved").get_data(as_text=True)
    assert "Saltmarsh restored" in page and "Ferry timetable statement" not in page
    page = client.get("/staff/releases/?q=ferry").get_data(as_text=True)
    assert "Saltmarsh restored" not in page and "Ferry timetable statement" in page


@pytest.mark.usefixtures("session", "make_user")
def test_kinds_are_managed_by_admins_only(client: FlaskClient, logged_in) -> None:
    logged_in(Role.EDITOR)
    assert client.get("/staff/releases/kinds").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/staff/releases/")})
    logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/releases/kinds")
    response = client.post(
        "/staff/releases/kinds", data={"csrf_token": token, "name": "Op-ed", "position": "5"}
    )
    assert response.status_code == 302
    assert "Op-ed" in client.get("/staff/releases/kinds").get_data(as_text=True)


def test_press_contacts_can_be_added(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    token = csrf_token(client, "/staff/releases/contacts")
    response = client.post(
        "/staff/releases/contacts",
        data={"csrf_token": token, "name": "Ann Quay", "email": "ann@example.org", "phone": "1"},
    )
    assert response.status_code == 302
    assert "ann@example.org" in client.get("/staff/releases/contacts").get_data(as_text=True)
