"""Finding 5: a draft is its owner's; other press officers neither see nor change it; an
editor can take it over."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.releases import services
from distributor.releases.models import ReleaseStatus
from tests.conftest import login
from tests.support.forms import csrf_token
from tests.support.releases import kind


def _draft(session: Session, author: User) -> int:
    release = services.create_release(
        session,
        author=author,
        data=services.ReleaseInput(
            kind_id=kind(session).id,
            title="Pat's private draft about the harbour",
            summary="Not ready.",
            body_markdown="Secret plans.",
        ),
    )
    session.commit()
    return release.id


def test_other_press_officers_cannot_read_edit_or_withdraw_a_draft(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    pat, sam = make_user(Role.PRESS_OFFICER), make_user(Role.PRESS_OFFICER)
    release_id = _draft(session, pat)
    login(client, sam)
    assert b"private draft" not in client.get("/staff/releases/").data
    for path in (f"/staff/releases/{release_id}", f"/staff/releases/{release_id}/edit",
                 f"/staff/releases/{release_id}/versions"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    token = csrf_token(client, "/staff/releases/")
    response = client.post(
        f"/staff/releases/{release_id}/transition",
        data={"csrf_token": token, "to": ReleaseStatus.WITHDRAWN.value},
    )
    assert response.status_code == 404
    session.expire_all()
    assert services.get_release(session, release_id).status is ReleaseStatus.DRAFT


def test_the_owner_and_editors_see_it_and_an_editor_takes_it_over(
    app: object, make_user: Callable[..., User], session: Session
) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    pat, eve = make_user(Role.PRESS_OFFICER), make_user(Role.EDITOR)
    release_id = _draft(session, pat)
    owner = app.test_client()
    login(owner, pat)
    assert owner.get(f"/staff/releases/{release_id}").status_code == 200
    editor = app.test_client()
    login(editor, eve)
    page = editor.get(f"/staff/releases/{release_id}")
    assert page.status_code == 200 and b"Take this draft over" in page.data
    token = csrf_token(editor, f"/staff/releases/{release_id}")
    editor.post(f"/staff/releases/{release_id}/take-over", data={"csrf_token": token})
    session.expire_all()
    assert services.get_release(session, release_id).owner_id == eve.id
    assert owner.get(f"/staff/releases/{release_id}").status_code == 404


def test_another_press_officers_draft_is_hidden_on_the_send_and_preview_pages(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    pat, sam = make_user(Role.PRESS_OFFICER), make_user(Role.PRESS_OFFICER)
    release_id = _draft(session, pat)
    token = services.get_release(session, release_id).preview_token
    login(client, sam)
    for path in (
        f"/staff/releases/{release_id}/send",
        f"/staff/releases/{release_id}/send/progress.json",
        f"/staff/releases/{release_id}/email-preview",
        f"/staff/releases/{release_id}/email-preview/html",
    ):
        assert client.get(path).status_code == 404, path
    # The compose page's live previews lend nothing of a draft named by its id.
    csrf = csrf_token(client, "/staff/releases/")
    for path in ("/staff/releases/preview-page", "/staff/releases/preview-mail"):
        response = client.post(
            path, data={"csrf_token": csrf, "release_id": str(release_id), "title": "Mine"}
        )
        assert response.status_code == 200, path
        assert token not in response.get_data(as_text=True), path
