"""Reading a release mail in the dev inbox records nothing for the journalist (issue 11)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.delivery.rendering import Recipient, compile_release
from distributor.devinbox.services import store_message
from distributor.settings import Settings
from distributor.tracking.models import TrackingEvent
from tests.support import delivery_factories as f


def test_dev_inbox_shows_the_mail_without_pixel_or_tracked_links(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    session: Session,
    settings: Settings,
) -> None:
    f.organisation(session, settings, tracking=True)
    release = f.release(session)
    journalist = f.journalist(session)
    recipient = Recipient(
        delivery_id=7,
        journalist_id=journalist.id,
        email="jane@example.org",
        name="Jane Doe",
        verp_token="AbC123_-xyz",
        matched_beats="Climate",
        is_tracking_allowed=True,
    )
    envelope, _, raw = compile_release(session, release.id, settings).message_for(recipient)
    assert b"/t/o/AbC123_-xyz" in raw.replace(b"=\r\n", b"")  # the real mail is tracked
    stored = store_message(session, mail_from=envelope, rcpt_to=[recipient.email], raw=raw)
    session.commit()
    logged_in(Role.PRESS_OFFICER)

    html = client.get(f"/dev/inbox/{stored.id}/html").get_data(as_text=True)
    page = client.get(f"/dev/inbox/{stored.id}").get_data(as_text=True)
    for shown in (html, page):
        assert "/t/o/" not in shown and "/t/c/" not in shown
    assert 'href="https://council.example/plans?a=1&amp;b=2"' in html
    assert f"{settings.public_base_url}/releases/{release.slug}" in html
    assert "Sea wall to be raised before winter" in html
    events = session.scalar(select(func.count()).select_from(TrackingEvent))
    assert events == 0
