"""The compose form previews unsaved work as the whole newsroom page and the whole mail."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from tests.support.forms import csrf_token
from tests.support.releases import kind


def _typed(session: Session, client: FlaskClient) -> dict[str, object]:
    return {
        "csrf_token": csrf_token(client, "/staff/releases/new"),
        "kind_id": str(kind(session, "Report").id),
        "title": "Salt marsh <restored>",
        "summary": "Forty hectares flood again at high tide.",
        "body_markdown": "First **bold** words.\n\n<script>alert(1)</script>\n\n## Next",
        "photo_credit": "Photo by Ines Carrow",
    }


def test_newsroom_page_preview_of_unsaved_work(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    logged_in(Role.PRESS_OFFICER)
    response = client.post("/staff/releases/preview-page", data=_typed(session, client))
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith("sandbox")
    page = response.get_data(as_text=True)
    assert "Salt marsh &lt;restored&gt;" in page and "<strong>bold</strong>" in page
    assert "<script>alert" not in page
    assert "Forty hectares" in page and 'class="kind">Report<' in page


def test_mail_preview_of_unsaved_work(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    logged_in(Role.PRESS_OFFICER)
    response = client.post("/staff/releases/preview-mail", data=_typed(session, client))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<mj-" not in html and "View in browser" in html
    assert "Salt marsh &lt;restored&gt;" in html and "<strong>bold</strong>" in html
    assert "/t/o/" not in html and "fonts.googleapis" not in html


def test_compose_offers_the_toolbar_and_vendored_converter(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.PRESS_OFFICER)
    page = client.get("/staff/releases/new").get_data(as_text=True)
    assert 'role="toolbar"' in page and "/static/vendor/turndown/turndown.js" in page
    assert 'formaction="/staff/releases/preview-page"' in page  # works without JavaScript
    assert client.get("/static/vendor/turndown/turndown.js").status_code == 200
    assert "MIT" in client.get("/static/vendor/turndown/LICENSE").get_data(as_text=True)
