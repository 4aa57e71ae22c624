"""Short mails to room holders: corrections, "embargo lifted", and "open it in this browser".

Each is an ``embargo_notices`` row first (unique per access, kind and key), so a sweep that
runs twice, or a task that is redelivered, sends nothing twice. Nothing is mailed inside an
open transaction: render, commit, send, then record the outcome.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, select, text
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.db import UTCDateTime
from distributor.delivery.release_context import embargo_label, public_release_url
from distributor.embargo import services, tokens
from distributor.embargo.handlers import room_url
from distributor.embargo.models import (
    NOTICE_MACHINE,
    AccessStatus,
    EmbargoAccess,
    EmbargoNotice,
    NoticeKind,
    NoticeStatus,
    ReleaseEmbargoOptions,
)
from distributor.errors import Conflict, NotFound
from distributor.logs import get_logger
from distributor.mail import outgoing as outgoing_mail
from distributor.mail.rendering import EmailRenderer
from distributor.mail.transport import MailTransport
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.tasks_api import TaskRef, enqueue_after_commit

log = get_logger("distributor.embargo.notices")

SEND_TASK = TaskRef("embargo.send_notices")
_TEMPLATES = {
    NoticeKind.CORRECTION: "embargo_correction",
    NoticeKind.LIFTED: "embargo_lifted",
    NoticeKind.NEW_BROWSER: "embargo_new_browser",
}


def queue_correction(session: Session, release_id: int, now: dt.datetime) -> int:
    """Queue a correction mail to every journalist with an open room; returns how many."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound("Release not found")
    if not services.is_under_embargo(release, now):
        raise Conflict("The embargo has lifted: corrections go out as a new release.")
    changes = services.release_changes(session, release)
    if not changes:
        raise Conflict("Nothing has changed since the release was sent under embargo.")
    sent_before = session.scalar(
        text(
            "SELECT count(DISTINCT n.key) FROM embargo_notices n JOIN embargo_accesses a "
            "ON a.id = n.access_id WHERE a.release_id = :rid AND n.kind = 'correction'"
        ).bindparams(bindparam("rid", type_=Integer())),
        {"rid": release_id},
    )
    key = f"correction-{int(sent_before or 0) + 1}"
    statement = text(
        "INSERT INTO embargo_notices (access_id, kind, key, changes, status, created_at) "
        "SELECT a.id, 'correction', :key, :changes, 'queued', :now FROM embargo_accesses a "
        "WHERE a.release_id = :rid AND a.status = 'active'"
    ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("rid", type_=Integer()))
    result = session.execute(
        statement, {"key": key, "changes": "\n".join(changes), "now": now, "rid": release_id}
    )
    enqueue_after_commit(session, SEND_TASK)
    return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]


def queue_lift_notes(session: Session, now: dt.datetime) -> int:
    """Sweep: for each lifted release that asked for it, queue one "lifted" note per journalist
    who accepted the terms (every room holder when the release asked for no terms)."""
    due = session.scalars(
        select(ReleaseEmbargoOptions)
        .join(Release, Release.id == ReleaseEmbargoOptions.release_id)
        .where(
            ReleaseEmbargoOptions.sends_lift_note.is_(True),
            ReleaseEmbargoOptions.lift_noted_at.is_(None),
            ReleaseEmbargoOptions.sent_at.is_not(None),
            Release.published_at.is_not(None),
            Release.published_at <= now,
        )
        .with_for_update(of=ReleaseEmbargoOptions, skip_locked=True)
    ).all()
    queued = 0
    for options in due:
        release = session.get(Release, options.release_id)
        if release is None or services.is_under_embargo(release, now):
            continue
        accepted = (
            "AND EXISTS (SELECT 1 FROM embargo_terms_acceptances t "
            "WHERE t.journalist_id = a.journalist_id)"
            if options.requires_terms
            else ""
        )
        result = session.execute(
            text(
                "INSERT INTO embargo_notices (access_id, kind, key, changes, status, created_at) "  # noqa: S608
                "SELECT a.id, 'lifted', 'lift', '', 'queued', :now FROM embargo_accesses a "
                f"WHERE a.release_id = :rid AND a.status = 'active' {accepted} "
                "AND NOT EXISTS (SELECT 1 FROM embargo_notices n WHERE n.access_id = a.id "
                "AND n.kind = 'lifted')"
            ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("rid", type_=Integer())),
            {"now": now, "rid": release.id},
        )
        queued += max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]
        options.lift_noted_at = now
    session.flush()
    return queued


@dataclass(frozen=True)
class OutgoingNotice:
    notice_id: int
    mail: outgoing_mail.OutgoingMail


def build_notice(
    session: Session, notice_id: int, *, settings: Settings, renderer: EmailRenderer
) -> OutgoingNotice | None:
    """Render one queued notice; None when there is nothing (left) to send."""
    notice = session.get(EmbargoNotice, notice_id)
    if notice is None or notice.status is not NoticeStatus.QUEUED:
        return None
    access = session.get(EmbargoAccess, notice.access_id)
    if access is None:
        return None
    journalist = session.get(Journalist, access.journalist_id)
    release = session.get(Release, access.release_id)
    if journalist is None or release is None or journalist.erased_at is not None:
        return None
    if notice.kind is not NoticeKind.LIFTED and access.status is not AccessStatus.ACTIVE:
        return None
    org = get_organisation(session, settings)
    base = settings.public_base_url
    room = room_url(settings, release.id, journalist.id)
    context = {
        "org": org,
        "name": journalist.name,
        "title": release.title,
        "embargo": embargo_label(release.embargo_until, org.timezone)
        if release.embargo_until
        else "",
        "room_url": room,
        "public_url": public_release_url(settings, release),
        "changes": [c for c in notice.changes.split("\n") if c],
        "browser_url": f"{room}/browser/{notice.key}/"
        f"{tokens.new_browser_code(settings, access.id, notice.key)}",
        "base_url": base,
    }
    rendered = renderer.render_email(_TEMPLATES[notice.kind], context)
    # The same road as every other mail: VERP sender, DKIM when on, our header rules.
    mail = outgoing_mail.build_transactional(
        settings,
        rendered=rendered,
        from_name=org.name,
        to_address=journalist.email,
        reply_to=org.press_email,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    return OutgoingNotice(notice.id, mail)


def _mark(session: Session, notice_id: int, status: NoticeStatus, now: dt.datetime) -> None:
    notice = session.get(EmbargoNotice, notice_id, with_for_update=True)
    if notice is None or notice.status is not NoticeStatus.QUEUED:
        return
    NOTICE_MACHINE.check(notice.status, status)
    notice.status = status
    notice.sent_at = now if status is NoticeStatus.SENT else None


def send_queued(
    session_factory: Callable[[], AbstractContextManager[Session]],
    *,
    settings: Settings,
    renderer: EmailRenderer,
    transport: MailTransport,
    now: Callable[[], dt.datetime],
    limit: int = 500,
) -> int:
    """Send up to ``limit`` queued notices, one transaction to read and one per outcome."""
    with session_factory() as session:
        ids = list(
            session.scalars(
                select(EmbargoNotice.id)
                .where(EmbargoNotice.status == NoticeStatus.QUEUED)
                .order_by(EmbargoNotice.id)
                .limit(limit)
            )
        )
    sent = 0
    for notice_id in ids:
        with session_factory() as session:
            outgoing = build_notice(session, notice_id, settings=settings, renderer=renderer)
            if outgoing is None:
                _mark(session, notice_id, NoticeStatus.FAILED, now())
                continue
        try:
            outgoing_mail.send(transport, outgoing.mail)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("embargo notice not sent", notice_id=notice_id, error=str(exc))
            continue  # stays queued; the next sweep tries again
        with session_factory() as session:
            _mark(session, notice_id, NoticeStatus.SENT, now())
        sent += 1
    return sent
