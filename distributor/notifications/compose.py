"""The words of each workflow notification and the mail that carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.errors import NotFound
from distributor.mail import outgoing
from distributor.mail.rendering import EmailRenderer
from distributor.notifications.models import NotificationKind, StaffMail
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release
from distributor.settings import Settings

# The first figures of a finished send, in the order the mail lists them (keys of
# ``reports.definitions.RELEASE_FIGURES``).
FIGURES = (
    ("sent", "delivered to the mail servers"),
    ("digest", "waiting for their daily digest"),
    ("failed", "failed"),
    ("deferred", "still being retried"),
    ("in_doubt", "outcome unknown"),
    ("bounced_hard", "bounced"),
    ("human_openers", "opened (people, not machines)"),
    ("human_clickers", "clicked a link"),
)


@dataclass(frozen=True)
class Notification:
    subject: str
    mail: outgoing.OutgoingMail


def _figures(session: Session, release_id: int) -> list[tuple[int, str]]:
    from distributor.reports.services import release_totals

    totals = release_totals(session, release_id)
    return [(totals.get(key, 0), label) for key, label in FIGURES if totals.get(key, 0)]


def notification_context(
    session: Session, mail: StaffMail, release: Release, settings: Settings
) -> dict[str, Any]:
    """Headline, subject and details for one notification row."""
    org = get_organisation(session, settings)
    zone = org.timezone or settings.org_timezone
    title = " ".join(release.title.split())
    kind = mail.notification_kind
    actor = session.get(User, mail.requested_by_id) if mail.requested_by_id else None
    by = actor.name if actor is not None else ""
    figures: list[tuple[int, str]] = []
    when = ""
    if kind is NotificationKind.SUBMITTED:
        subject = f"Review requested: {title}"
        headline = f"{by or 'A colleague'} submitted a release for review."
    elif kind is NotificationKind.APPROVED:
        subject = f"Approved: {title}"
        headline = f"{by or 'An editor'} approved your release."
    elif kind is NotificationKind.SENT_BACK:
        subject = f"Sent back: {title}"
        headline = f"{by or 'An editor'} sent your release back to draft."
    elif kind is NotificationKind.SCHEDULED:
        from distributor.delivery.models import Send  # delivery depends on us, not the reverse

        scheduled = session.scalar(select(Send.scheduled_for).where(Send.release_id == release.id))
        if scheduled is not None:
            when = scheduled.astimezone(ZoneInfo(zone)).strftime("%-d %b %Y %H:%M %Z")
        subject = f"Scheduled{' for ' + when if when else ''}: {title}"
        headline = f"{by or 'An editor'} scheduled the send of your release."
    elif kind is NotificationKind.SENT:
        figures = _figures(session, release.id)
        subject = f"Sent: {title}"
        headline = "Your release has gone out. The first figures:"
    else:
        raise NotFound("Not a workflow notification")
    base = settings.public_base_url.rstrip("/")
    return {
        "org": org,
        "subject_line": subject,
        "headline": headline,
        "title": title,
        "comment": mail.note,
        "when": when,
        "figures": figures,
        "release_url": f"{base}/staff/releases/{release.id}",
        "report_url": f"{base}/staff/reports/releases/{release.id}",
        "is_sent": kind is NotificationKind.SENT,
        "preferences_url": f"{base}/staff/notifications",
    }


def build_notification(
    session: Session, staff_mail_id: int, *, settings: Settings, renderer: EmailRenderer
) -> Notification:
    """Render the ``notification`` template for one queued row."""
    mail = session.get(StaffMail, staff_mail_id)
    if mail is None or mail.release_id is None:
        raise NotFound("The notification or its release no longer exists")
    release = session.get(Release, mail.release_id)
    if release is None:
        raise NotFound("The release no longer exists")
    context = notification_context(session, mail, release, settings)
    rendered = renderer.render_email("notification", context)
    # The one road every mail takes: VERP sender, DKIM when on, our header rules.
    message = outgoing.build_transactional(
        settings,
        rendered=rendered,
        from_name=context["org"].name,
        to_address=mail.to_address,
        reply_to=context["org"].press_email,
        # RFC 3834: an automatic mail, so nobody's autoresponder answers it.
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    return Notification(rendered.subject, message)
