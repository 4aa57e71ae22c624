"""Storing and reading dev-inbox messages."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from distributor.devinbox.models import DevMessage
from distributor.errors import NotFound


def store_message(
    session: Session, *, mail_from: str, rcpt_to: list[str], raw: bytes
) -> DevMessage:
    """Keep one received message."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    message = DevMessage(
        mail_from=mail_from,
        rcpt_to=", ".join(rcpt_to),
        subject=str(parsed.get("Subject", "")),
        size=len(raw),
        raw=raw,
    )
    session.add(message)
    session.flush()
    return message


def list_messages(session: Session, *, limit: int = 200) -> list[DevMessage]:
    stmt = select(DevMessage).order_by(DevMessage.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def count_messages(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(DevMessage)) or 0


def get_message(session: Session, message_id: int) -> DevMessage:
    message = session.get(DevMessage, message_id)
    if message is None:
        raise NotFound("No such message in the dev inbox")
    return message


def clear_inbox(session: Session) -> int:
    result = session.execute(delete(DevMessage))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class MessageView:
    headers: list[tuple[str, str]]
    html: str | None
    text: str | None
    attachments: list[str]


def parse_for_display(raw: bytes) -> MessageView:
    """Split a raw message into headers, HTML part, text part and attachment names."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    attachments = [part.get_filename() or "(unnamed)" for part in parsed.iter_attachments()]
    return MessageView(
        headers=[(k, str(v)) for k, v in parsed.items()],
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else None,
        attachments=attachments,
    )
