"""Running a staff mail with its outcome recorded: the staff-mail tasks of admin, delivery and
notifications call ``run_recorded`` with themselves."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

from distributor.db import task_session
from distributor.notifications import services

# Connection trouble is worth another try; an SMTP 5xx will not improve.
TRANSIENT = (
    ConnectionError,
    TimeoutError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)
MAX_RETRIES = 5


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        message = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {message}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [
            f"{code} {msg.decode('utf-8', 'replace')}" for code, msg in exc.recipients.values()
        ]
        return "refused: " + "; ".join(codes)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def run_recorded(task: Any, staff_mail_id: int | None, send: Callable[[], str]) -> None:
    """Call ``send`` (which returns the subject it sent) and record the outcome.

    Transient failures retry with backoff and leave the row queued with the last error;
    the last retry, or any other failure, marks it failed.
    """
    try:
        subject = send()
    except TRANSIENT as exc:
        retries = int(getattr(task.request, "retries", 0) or 0)
        if staff_mail_id is not None:
            with task_session() as session:
                if retries >= MAX_RETRIES:
                    services.mark_failed(session, staff_mail_id, _describe(exc))
                else:
                    services.note_attempt_failed(session, staff_mail_id, _describe(exc))
        if retries >= MAX_RETRIES:
            return
        raise task.retry(
            exc=exc, countdown=min(300, 5 * 2**retries), max_retries=MAX_RETRIES
        ) from exc
    except Exception as exc:
        if staff_mail_id is not None:
            with task_session() as session:
                services.mark_failed(session, staff_mail_id, _describe(exc))
        if isinstance(exc, smtplib.SMTPException):
            return  # recorded; a refusal is an outcome, not a crash
        raise
    if staff_mail_id is not None:
        with task_session() as session:
            services.mark_sent(session, staff_mail_id, subject)
