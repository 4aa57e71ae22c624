"""The admin test email renders from MJML and carries the headers every mail needs."""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.admin.services import send_test_email_now
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings


@pytest.mark.usefixtures("app_ctx")
def test_test_email_is_rendered_and_sent(session: Session, make_user, settings: Settings) -> None:
    user = make_user(Role.ADMIN, name="Ada <Admin>")
    transport = InMemoryTransport()
    send_test_email_now(
        session,
        to_address="desk@example.org",
        requested_by_id=user.id,
        settings=settings,
        renderer=EmailRenderer(),
        transport=transport,
    )
    [sent] = transport.sent
    assert sent.recipients == ["desk@example.org"]
    assert b"\r\n" in sent.message and b"\n" not in sent.message.replace(b"\r\n", b"")
    assert max(len(line) for line in sent.message.split(b"\r\n")) <= 998
    message = email.message_from_bytes(sent.message, policy=email.policy.default)
    assert message["Message-ID"].endswith(f"@{settings.from_domain}>")
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "It works." in html and "It works." in text
    assert "<mj-" not in html
    # Staff text is escaped before it reaches MJML.
    assert "Ada &lt;Admin&gt;" in html
    assert settings.org_postal_address in text
