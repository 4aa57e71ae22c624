"""ESP event payloads (SES, Postmark, SendGrid, Mailgun) turned into the reports DSNs give us.

Each event becomes one ``ParsedReport`` so that tying it to a delivery and applying the policy
is the same code path as for a DSN. Status codes come from the event when it has one; else
from the ESP's own bounce type (documented in each provider's webhook reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from distributor.bounces.models import Classification
from distributor.bounces.parsing import FailedRecipient, FeedbackReport, ParsedReport, best_status


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _tokens(text: str, bounce_domain: str) -> list[str]:
    pattern = re.compile(r"bounces\+([A-Za-z0-9_\-.=]{6,64})@" + re.escape(bounce_domain), re.I)
    return list(dict.fromkeys(m.group(1) for m in pattern.finditer(text)))


def _message_ids(*values: Any) -> list[str]:
    found = []
    for value in values:
        text = _str(value).strip()
        if text:
            found.append(text if text.startswith("<") else f"<{text}>")
    return list(dict.fromkeys(found))


def _bounce(
    address: str, status: str, diagnostic: str, remote_mta: str = "", action: str = "failed"
) -> FailedRecipient:
    return FailedRecipient(
        address=address.strip().lower(),
        action=action,
        status=status,
        diagnostic=diagnostic[:2000],
        remote_mta=remote_mta[:255],
    )


@dataclass(frozen=True)
class _Origin:
    """What every event of one request shares: its text and the ids that tie it to a delivery."""

    raw_text: str
    bounce_domain: str
    message_ids: list[str]
    tokens: list[str] = field(default_factory=list)


def _report(
    origin: _Origin,
    classification: Classification,
    detector: str,
    summary: str,
    *,
    recipients: list[FailedRecipient] | None = None,
    feedback: FeedbackReport | None = None,
) -> ParsedReport:
    tokens = [*origin.tokens, *_tokens(origin.raw_text, origin.bounce_domain)]
    return ParsedReport(
        classification=classification,
        detector=detector,
        recipients=recipients or [],
        feedback=feedback,
        verp_tokens=list(dict.fromkeys(tokens)),
        original_message_ids=origin.message_ids,
        summary=summary,
    )


# -- Amazon SES (notifications through SNS, or event publishing) -------------------------------

_SES_PERMANENT_DEFAULTS = {"noemail": "5.1.1", "general": "5.1.1", "suppressed": "5.1.1"}


def ses_report(message: dict[str, Any], raw_text: str, bounce_domain: str) -> ParsedReport:
    kind = _str(message.get("notificationType") or message.get("eventType")).lower()
    mail = message.get("mail") or {}
    headers = {_str(h.get("name")).lower(): _str(h.get("value")) for h in mail.get("headers") or []}
    common = mail.get("commonHeaders") or {}
    ids = _message_ids(headers.get("message-id"), common.get("messageId"))
    origin = _Origin(raw_text, bounce_domain, ids)
    if kind == "bounce":
        bounce = message.get("bounce") or {}
        bounce_type = _str(bounce.get("bounceType")).lower()
        sub_type = _str(bounce.get("bounceSubType")).lower()
        recipients = []
        for r in bounce.get("bouncedRecipients") or []:
            diagnostic = _str(r.get("diagnosticCode"))
            status = best_status(_str(r.get("status")), diagnostic)
            if not status:
                status = (
                    _SES_PERMANENT_DEFAULTS.get(sub_type, "5.0.0")
                    if bounce_type == "permanent"
                    else "4.0.0"
                )
            recipients.append(
                _bounce(
                    _str(r.get("emailAddress")),
                    status,
                    diagnostic or f"SES {bounce_type} {sub_type}",
                    _str(bounce.get("reportingMTA")),
                )
            )
        summary = f"SES {bounce_type} bounce ({sub_type})"
        return _report(origin, Classification.BOUNCE, "ses", summary, recipients=recipients)
    if kind == "complaint":
        complaint = message.get("complaint") or {}
        feedback_type = _str(complaint.get("complaintFeedbackType") or "abuse").lower()
        complained = complaint.get("complainedRecipients") or [{}]
        feedback = FeedbackReport(
            feedback_type=feedback_type,
            user_agent=_str(complaint.get("userAgent") or "Amazon SES"),
            original_rcpt_to=_str(complained[0].get("emailAddress")).lower(),
        )
        return _report(origin, Classification.COMPLAINT, "ses", "SES complaint", feedback=feedback)
    return _report(origin, Classification.OTHER, "ses", f"SES {kind or 'event'}; ignored")


# -- Postmark ---------------------------------------------------------------------------------

_POSTMARK_TYPES = {
    "hardbounce": "5.1.1",
    "badEmailaddress".lower(): "5.1.3",
    "manuallydeactivated": "5.2.1",
    "softbounce": "4.2.0",
    "transient": "4.0.0",
    "dnserror": "4.4.3",
    "blocked": "5.7.1",
    "smtpapierror": "4.0.0",
    "inboundError".lower(): "4.0.0",
    "unknown": "4.0.0",
}
_POSTMARK_AUTO = {
    "autoresponder",
    "outofoffice",
    "subscribe",
    "unsubscribe",
    "challengeverification",
}


def postmark_report(event: dict[str, Any], raw_text: str, bounce_domain: str) -> ParsedReport:
    record_type = _str(event.get("RecordType")).lower()
    bounce_type = _str(event.get("Type")).lower()
    metadata = event.get("Metadata") or {}
    tokens = [_str(metadata.get("verp_token"))] if metadata.get("verp_token") else []
    origin = _Origin(raw_text, bounce_domain, _message_ids(metadata.get("message_id")), tokens)
    address = _str(event.get("Email") or event.get("Recipient"))
    if record_type == "spamcomplaint" or bounce_type == "spamcomplaint":
        feedback = FeedbackReport("abuse", "Postmark", original_rcpt_to=address.lower())
        return _report(
            origin,
            Classification.COMPLAINT,
            "postmark",
            "Postmark spam complaint",
            feedback=feedback,
        )
    if record_type == "bounce":
        if bounce_type in _POSTMARK_AUTO:
            return _report(
                origin, Classification.AUTO_REPLY, "postmark", f"Postmark {bounce_type}; ignored"
            )
        details = _str(event.get("Details"))
        status = best_status("", details) if re.search(r"\d\.\d", details) else ""
        status = status or _POSTMARK_TYPES.get(bounce_type, "4.0.0")
        diagnostic = details or _str(event.get("Description"))
        recipient = _bounce(address, status, diagnostic)
        return _report(
            origin,
            Classification.BOUNCE,
            "postmark",
            f"Postmark {event.get('Type')}",
            recipients=[recipient],
        )
    return _report(origin, Classification.OTHER, "postmark", f"Postmark {record_type}; ignored")


# -- SendGrid ---------------------------------------------------------------------------------

_SENDGRID_CLASSES = {
    "invalid address": "5.1.1",
    "mailbox unavailable": "5.2.1",
    "reputation": "5.7.1",
    "content": "5.7.1",
    "frequency or volume too high": "4.7.0",
    "technical": "4.0.0",
}


def sendgrid_report(event: dict[str, Any], raw_text: str, bounce_domain: str) -> ParsedReport:
    kind = _str(event.get("event")).lower()
    tokens = [_str(event.get("verp_token"))] if event.get("verp_token") else []
    origin = _Origin(raw_text, bounce_domain, _message_ids(event.get("smtp-id")), tokens)
    address = _str(event.get("email"))
    if kind == "spamreport":
        feedback = FeedbackReport("abuse", "SendGrid", original_rcpt_to=address.lower())
        return _report(
            origin, Classification.COMPLAINT, "sendgrid", "SendGrid spam report", feedback=feedback
        )
    if kind in ("bounce", "deferred"):
        reason = _str(event.get("reason") or event.get("response"))
        status = best_status(_str(event.get("status")), reason)
        if event.get("type") == "blocked" and not status.startswith(("5.7", "4.7")):
            status = "5.7.1"  # SendGrid's "blocked": the receiver refused us, not the address
        if not status:
            klass = _str(event.get("bounce_classification")).lower()
            status = _SENDGRID_CLASSES.get(klass, "4.0.0" if kind == "deferred" else "5.0.0")
        action = "delayed" if kind == "deferred" else "failed"
        recipient = _bounce(address, status, reason, action=action)
        classification = Classification.DELAY if kind == "deferred" else Classification.BOUNCE
        return _report(
            origin, classification, "sendgrid", f"SendGrid {kind}", recipients=[recipient]
        )
    return _report(origin, Classification.OTHER, "sendgrid", f"SendGrid {kind}; ignored")


# -- Mailgun ----------------------------------------------------------------------------------


def mailgun_report(event: dict[str, Any], raw_text: str, bounce_domain: str) -> ParsedReport:
    kind = _str(event.get("event")).lower()
    message = event.get("message") or {}
    headers = message.get("headers") or {}
    variables = event.get("user-variables") or {}
    tokens = [_str(variables.get("verp_token"))] if variables.get("verp_token") else []
    origin = _Origin(raw_text, bounce_domain, _message_ids(headers.get("message-id")), tokens)
    address = _str(event.get("recipient"))
    if kind == "complained":
        feedback = FeedbackReport("abuse", "Mailgun", original_rcpt_to=address.lower())
        return _report(
            origin, Classification.COMPLAINT, "mailgun", "Mailgun complaint", feedback=feedback
        )
    if kind == "failed":
        status_info = event.get("delivery-status") or {}
        message_text = " ".join(
            _str(status_info.get(k)) for k in ("message", "description") if status_info.get(k)
        )
        code = _str(status_info.get("code"))
        status = best_status(_str(status_info.get("enhanced-code")), f"{code} {message_text}")
        permanent = _str(event.get("severity")).lower() == "permanent"
        if not status:
            status = "5.0.0" if permanent else "4.0.0"
        recipient = _bounce(
            address,
            status,
            f"{code} {message_text}".strip(),
            _str(status_info.get("mx-host")),
            action="failed" if permanent else "delayed",
        )
        classification = Classification.BOUNCE if permanent else Classification.DELAY
        return _report(origin, classification, "mailgun", f"Mailgun {kind}", recipients=[recipient])
    return _report(origin, Classification.OTHER, "mailgun", f"Mailgun {kind}; ignored")
