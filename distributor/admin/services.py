"""Admin tools: the end-to-end test email."""

from __future__ import annotations

from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.accounts.services import normalise_email
from distributor.db import utcnow
from distributor.errors import NotFound
from distributor.mail import outgoing
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport
from distributor.notifications.models import StaffMailKind
from distributor.notifications.services import record_staff_mail
from distributor.organisation.services import get_organisation
from distributor.settings import Settings
from distributor.tasks_api import TaskRef, enqueue_after_commit

SEND_TEST_EMAIL = TaskRef("admin.send_test_email")


def request_test_email(session: Session, *, to_address: str, requested_by: User) -> str:
    """Queue a test email; the worker renders and sends it after this transaction commits."""
    address = normalise_email(to_address)
    row = record_staff_mail(
        session, kind=StaffMailKind.TEST_EMAIL, to_address=address, requested_by_id=requested_by.id
    )
    enqueue_after_commit(session, SEND_TEST_EMAIL, address, requested_by.id, row.id)
    return address


def send_test_email_now(
    session: Session,
    *,
    to_address: str,
    requested_by_id: int,
    settings: Settings,
    renderer: EmailRenderer,
    transport: MailTransport,
) -> str:
    """Render the ``test_email`` template, hand it to the SMTP transport; return its subject."""
    user = session.get(User, requested_by_id)
    if user is None:
        raise NotFound("The user who asked for the test email no longer exists")
    org = get_organisation(session, settings)
    now = utcnow()
    context = {
        "org": org,
        "requested_by": user.name,
        "sent_at": now.astimezone(settings.tz).strftime("%d %B %Y, %H:%M %Z"),
        "smtp_url_host": settings.smtp_url.split("@")[-1],
        "public_base_url": settings.public_base_url,
    }
    rendered = renderer.render_email("test_email", context)
    mail = outgoing.build_transactional(
        settings,
        rendered=rendered,
        from_name=org.name,
        to_address=to_address,
        reply_to=org.press_email,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    outgoing.send(transport, mail)
    return rendered.subject
