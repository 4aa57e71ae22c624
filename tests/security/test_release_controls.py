"""Finding 15: four-eyes approval, preview links dead after withdrawal, API reads of personal
data limited to the roles that may export."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.errors import Forbidden
from distributor.releases import services
from distributor.releases.models import ReleaseStatus, ReleaseVersion
from tests.support.releases import make_release, staff


def test_four_eyes_the_last_editor_cannot_approve(session: Session) -> None:
    editor, other = staff(session, Role.EDITOR), staff(session, Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.add(
        ReleaseVersion(
            release_id=release.id,
            number=99,
            title=release.title,
            summary=release.summary,
            body_markdown="edited",
            by_id=editor.id,
        )
    )
    session.flush()
    with pytest.raises(Forbidden, match="Four-eyes"):
        services.transition(
            session, release, ReleaseStatus.APPROVED, by=editor, require_other_approver=True
        )
    # Without the setting the rule is off; with it, another editor may approve.
    services.transition(
        session, release, ReleaseStatus.APPROVED, by=other, require_other_approver=True
    )
    assert release.status is ReleaseStatus.APPROVED


def test_preview_link_dies_with_withdrawal_and_stays_dead(
    client: FlaskClient, session: Session
) -> None:
    editor = staff(session, Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    session.commit()
    link = f"/preview/{release.preview_token}"
    assert client.get(link).status_code == 200
    services.transition(session, release, ReleaseStatus.WITHDRAWN, by=editor)
    session.commit()
    assert client.get(link).status_code == 404
    services.transition(session, release, ReleaseStatus.DRAFT, by=editor)
    session.commit()
    assert client.get(link).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/api/journalists", "/api/journalists/1", "/api/subscriptions", "/api/reports/journalists/1"],
)
def test_press_officers_cannot_read_personal_data_through_the_api(
    client: FlaskClient, session: Session, make_user: Callable[..., User], path: str
) -> None:
    _, officer = create_token(session, make_user(Role.PRESS_OFFICER), "t")
    _, editor = create_token(session, make_user(Role.EDITOR), "t")
    session.commit()
    assert client.get(path, headers={"Authorization": f"Bearer {officer}"}).status_code == 403
    assert client.get(path, headers={"Authorization": f"Bearer {editor}"}).status_code in (
        200,
        404,
    )
