"""Reading what came back: RFC 3464 DSNs, other MTAs' bounces, RFC 5965 ARF, RFC 3834 replies.

Order matters. A DSN is authoritative, so its ``message/delivery-status`` part is read first;
an ARF feedback report is a complaint; then strong auto-reply markers (a vacation notice may
quote text that a heuristic bounce detector mistakes for a failure); then flufl.bounce
(Mailman's detectors) for non-standard bounces (Exim, qmail, old Exchange...); and last a
bare ``Auto-Submitted`` header, which Postfix and Exim also put on their bounces.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from distributor.bounces.models import Classification
from distributor.logs import get_logger

log = get_logger(__name__)

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"\b([45])\d\d\b")
_MESSAGE_ID_LINE = re.compile(rb"^(?:Message-ID|X-Message-ID):[ \t]*(<[^>\r\n]+>)", re.I | re.M)
_SUBJECT_AUTO = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[ -]?(reply|response)|auto:|"
    r"vacation|away from (my|the) (mail|office)|abwesenheitsnotiz|r[ée]ponse automatique)",
    re.I,
)
# Without an enhanced status code, these words in the diagnostic mean the mailbox is gone.
# Deliberately narrow: RFC 5321's stock "mailbox unavailable" and Postfix's "address rejected"
# also come with policy refusals (and "Sender address rejected" is about us).
_GONE_PHRASES = (
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "mailbox not found",
    "does not exist",
    "no mailbox here",
    "invalid recipient",
    "recipient not found",
    "account has been disabled",
    "user doesn't have",  # Yahoo: "This user doesn't have a yahoo.com account"
    "unknown recipient",
    "recipient name is not recognized",
)


@dataclass(frozen=True)
class FailedRecipient:
    """One per-recipient outcome: from a DSN's fields, or reconstructed for other formats."""

    address: str
    action: str  # failed, delayed (RFC 3464 2.3.3)
    status: str = ""  # RFC 3463 enhanced code, e.g. 5.1.1
    diagnostic: str = ""
    remote_mta: str = ""


@dataclass(frozen=True)
class FeedbackReport:
    """The machine-readable part of an RFC 5965 abuse report."""

    feedback_type: str
    user_agent: str = ""
    original_rcpt_to: str = ""
    original_mail_from: str = ""


@dataclass
class ParsedReport:
    classification: Classification
    detector: str = ""  # rfc3464, arf, flufl, rfc3834
    recipients: list[FailedRecipient] = field(default_factory=list)
    feedback: FeedbackReport | None = None
    verp_tokens: list[str] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)
    summary: str = ""


def status_from_text(text: str) -> str:
    """The first enhanced status code in ``text``, else one implied by its SMTP reply code."""
    found = _ENHANCED.search(text)
    if found:
        return ".".join(found.groups())
    basic = _BASIC.search(text)
    if basic:
        return f"{basic.group(1)}.0.0"
    return ""


def best_status(status_field: str, diagnostic: str) -> str:
    """The DSN's Status, unless it is a generic x.0.0 and the diagnostic names a specific code."""
    status = status_from_text(status_field) if status_field else ""
    from_diagnostic = status_from_text(diagnostic)
    if not status:
        status = from_diagnostic
    elif status.endswith(".0.0") and from_diagnostic[:1] == status[:1]:
        status = from_diagnostic or status
    # Only a bare reply code (or none): the words decide whether the mailbox is gone.
    if status in ("", "5.0.0") and any(p in diagnostic.lower() for p in _GONE_PHRASES):
        status = "5.1.1"
    return status


def _header_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part, however it was parsed."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    parser = email.parser.HeaderParser()
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [parser.parsestr(block + "\n") for block in blocks if block.strip()]


def _typed_value(value: str | None) -> str:
    """``rfc822; someone@example.org`` -> ``someone@example.org`` (RFC 3464 address-type)."""
    if not value:
        return ""
    text = " ".join(str(value).split())
    _, _, rest = text.partition(";")
    return (rest or text).strip()


def _address(value: str) -> str:
    return parseaddr(value.strip().strip("<>"))[1].lower() or value.strip().strip("<>").lower()


def _read_dsn(msg: Message) -> list[FailedRecipient] | None:
    parts = [
        p
        for p in msg.walk()
        if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    ]
    if not parts:
        return None
    recipients: list[FailedRecipient] = []
    for part in parts:
        blocks = _header_blocks(part)
        reporting_mta = _typed_value(blocks[0].get("Reporting-MTA")) if blocks else ""
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            final = _typed_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
            if not final:
                continue
            diagnostic = _typed_value(block.get("Diagnostic-Code"))
            if not diagnostic:
                # Some MTAs (Sendmail for DNS failures) explain only in the human-readable part.
                diagnostic = _diagnostic_near(_body_text(msg), _address(final))
            recipients.append(
                FailedRecipient(
                    address=_address(final),
                    action=str(block.get("Action", "")).split()[0].lower()
                    if block.get("Action")
                    else "",
                    status=best_status(str(block.get("Status", "")), diagnostic),
                    diagnostic=diagnostic,
                    remote_mta=_typed_value(block.get("Remote-MTA")) or reporting_mta,
                )
            )
    return recipients


def _read_arf(msg: Message) -> FeedbackReport | None:
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = _header_blocks(part)
        fields: Message = blocks[0] if blocks else Message()
        return FeedbackReport(
            feedback_type=str(fields.get("Feedback-Type", "abuse")).strip().lower() or "abuse",
            user_agent=str(fields.get("User-Agent", "")).strip()[:255],
            original_rcpt_to=_address(str(fields.get("Original-Rcpt-To", "")))
            if fields.get("Original-Rcpt-To")
            else "",
            original_mail_from=_address(str(fields.get("Original-Mail-From", "")))
            if fields.get("Original-Mail-From")
            else "",
        )
    return None


def _decoded(value: object) -> str:
    """A header with its RFC 2047 encoded words decoded (``=?utf-8?q?...?=``)."""
    text = "" if value is None else str(value)
    try:
        return str(make_header(decode_header(text)))
    except (UnicodeError, LookupError, ValueError):
        return text


def auto_reply_markers(msg: Message) -> tuple[bool, bool]:
    """(strong, weak) RFC 3834 signs: strong ones only auto-responders send."""
    precedence = str(msg.get("Precedence", "")).strip().lower()
    strong = bool(
        msg.get("X-Autoreply")
        or msg.get("X-Autorespond")
        or msg.get("X-Vacation")
        or precedence == "auto_reply"
        or _SUBJECT_AUTO.search(_decoded(msg.get("Subject")))
    )
    auto_submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    weak = bool(auto_submitted) and not auto_submitted.startswith("no")
    return strong, weak


def _body_text(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                try:
                    chunks.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
                except LookupError:  # a charset Python does not know
                    chunks.append(payload.decode("utf-8", "replace"))
    return "\n".join(chunks)


def _diagnostic_near(text: str, address: str) -> str:
    """The lines following ``address`` in a free-text bounce: where MTAs put the reason."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if address in line.lower():
            window = " ".join(x.strip() for x in lines[i : i + 5] if x.strip())
            return window[:1000]
    return ""


def _read_heuristic(msg: Message) -> list[FailedRecipient]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        # A detector choking on a malformed message must not make it a poison pill that is
        # retried forever; it is then simply not a bounce we recognise.
        log.warning("bounces.detector_failed", exc_info=True)
        return []
    text = _body_text(msg)
    recipients = []
    for action, found in (("failed", permanent), ("delayed", temporary)):
        for raw_address in sorted(found):
            address = raw_address.decode("ascii", "replace").lower()
            diagnostic = _diagnostic_near(text, address)
            recipients.append(
                FailedRecipient(
                    address=address,
                    action=action,
                    status=best_status("", diagnostic),
                    diagnostic=diagnostic,
                )
            )
    return recipients


def _verp_tokens(raw: bytes, envelope_to: list[str], bounce_domain: str) -> list[str]:
    pattern = re.compile(
        rb"bounces\+([A-Za-z0-9_\-.=]{6,64})@" + re.escape(bounce_domain.encode()), re.I
    )
    found: list[str] = []
    for rcpt in envelope_to:
        match = pattern.search(rcpt.encode("utf-8", "replace"))
        if match:
            found.append(match.group(1).decode())
    found += [m.group(1).decode() for m in pattern.finditer(raw)]
    return list(dict.fromkeys(found))


def _original_message_ids(raw: bytes) -> list[str]:
    """Message-IDs quoted in the body (returned headers), never the report's own one."""
    header_end = re.search(rb"\r?\n\r?\n", raw)
    body = raw[header_end.end() :] if header_end else b""
    return list(
        dict.fromkeys(
            m.group(1).decode("ascii", "replace") for m in _MESSAGE_ID_LINE.finditer(body)
        )
    )


def parse_message(raw: bytes, *, envelope_to: list[str], bounce_domain: str) -> ParsedReport:
    """Classify one inbound message and pull out everything that ties it to a delivery."""
    # compat32 keeps delivery-status parts as lists of header blocks, as flufl.bounce expects.
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    report = ParsedReport(
        classification=Classification.UNRECOGNISED,
        verp_tokens=_verp_tokens(raw, envelope_to, bounce_domain),
        original_message_ids=_original_message_ids(raw),
    )
    strong_auto, weak_auto = auto_reply_markers(msg)

    dsn = _read_dsn(msg)
    if dsn is not None:
        report.detector = "rfc3464"
        return _from_recipients(report, dsn)

    feedback = _read_arf(msg)
    if feedback is not None:
        report.detector = "arf"
        report.classification = Classification.COMPLAINT
        report.feedback = feedback
        report.summary = (
            f"ARF {feedback.feedback_type} report from {feedback.user_agent or 'unknown'}"
        )
        return report

    if strong_auto:
        report.detector = "rfc3834"
        report.classification = Classification.AUTO_REPLY
        report.summary = "auto-reply (vacation or out-of-office notice); ignored"
        return report

    heuristic = _read_heuristic(msg)
    if heuristic:
        report.detector = "flufl"
        return _from_recipients(report, heuristic)

    if weak_auto:
        report.detector = "rfc3834"
        report.classification = Classification.AUTO_REPLY
        report.summary = "auto-submitted message (RFC 3834); ignored"
        return report
    report.summary = "not a bounce, complaint or auto-reply we recognise"
    return report


def _from_recipients(report: ParsedReport, recipients: list[FailedRecipient]) -> ParsedReport:
    failed = [r for r in recipients if r.action.startswith(("fail", "error"))]
    delayed = [r for r in recipients if r.action.startswith("delay")]
    if failed:
        report.classification = Classification.BOUNCE
        report.recipients = failed
        report.summary = "; ".join(f"{r.address} {r.status or 'no status'}" for r in failed)
    elif delayed:
        report.classification = Classification.DELAY
        report.recipients = delayed
        report.summary = "delayed: " + ", ".join(r.address for r in delayed)
    else:
        report.classification = Classification.OTHER
        report.summary = (
            "delivery report without failures ("
            + ", ".join(sorted({r.action or "no action" for r in recipients}))
            + ")"
        )
    return report
