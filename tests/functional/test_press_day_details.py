"""The smaller frictions of issue 11, item 9: what a press officer sees, labels, one comment
box, fixing a typo after submitting, photo credits, the favicon."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.releases.models import ReleaseStatus, credit_line
from tests.support.forms import csrf_token
from tests.support.releases import make_release


def test_press_officer_is_not_offered_what_they_cannot_use(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    for hidden in (">Send<", ">Dev inbox<", ">Suppressions<"):
        assert hidden not in page, hidden
    assert ">Audience and checklist<" in page


def test_editor_sees_send_dev_inbox_and_suppressions(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    session.commit()
    logged_in(Role.EDITOR)
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    for shown in (">Send<", ">Dev inbox<", ">Suppressions<"):
        assert shown in page, shown


def test_a_draft_is_discarded_not_withdrawn(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = make_release(session)
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert ">Discard draft</button>" in page and ">Withdraw</button>" not in page


def test_review_has_one_comment_box_for_every_move(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.commit()
    logged_in(Role.EDITOR)
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert page.count('name="comment"') == 1
    for label in ("Approve", "Send back", "Withdraw"):
        assert f">{label}</button>" in page
    token = csrf_token(client, f"/staff/releases/{release.id}")
    client.post(
        f"/staff/releases/{release.id}/transition",
        data={"csrf_token": token, "to": "draft", "comment": "Fix the second quote"},
    )
    session.refresh(release)
    assert release.status is ReleaseStatus.DRAFT


def test_the_author_fixes_a_typo_after_submitting_and_it_stays_in_review(
    client: FlaskClient,
    session: Session,
    logged_in: Callable[[Role], User],
    make_user: Callable[..., User],
) -> None:
    author = logged_in(Role.PRESS_OFFICER)
    release = make_release(session, title="Harbour walls inspcted", status=ReleaseStatus.IN_REVIEW)
    release.created_by_id = author.id
    session.commit()
    page = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert ">Edit</a>" in page
    token = csrf_token(client, f"/staff/releases/{release.id}/edit")
    response = client.post(
        f"/staff/releases/{release.id}/edit",
        data={
            "csrf_token": token,
            "kind_id": str(release.kind_id),
            "title": "Harbour walls inspected",
            "summary": release.summary,
            "body_markdown": release.body_markdown,
        },
    )
    assert response.status_code == 302
    session.refresh(release)
    assert release.title == "Harbour walls inspected"
    assert release.status is ReleaseStatus.IN_REVIEW
    shown = client.get(f"/staff/releases/{release.id}").get_data(as_text=True)
    assert "stays in review" in shown

    other = make_user(Role.PRESS_OFFICER, email="other@example.org")
    session.commit()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/staff/")})
    from tests.conftest import login

    login(client, other)
    assert client.get(f"/staff/releases/{release.id}/edit").status_code == 302  # refused


def test_a_credit_that_already_says_photo_is_not_prefixed_again() -> None:
    assert credit_line("Jo Marsh") == "Photo: Jo Marsh"
    assert credit_line("Photo by Jo Marsh") == "Photo by Jo Marsh"
    assert credit_line("Photo: Jo Marsh / Harbour Light") == "Photo: Jo Marsh / Harbour Light"
    assert credit_line("© Jo Marsh") == "© Jo Marsh"
    assert credit_line("  ") == ""


def test_favicon_is_served(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO header
