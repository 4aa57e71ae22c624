"""Reading what came back: RFC 3464 DSNs, other MTAs' bounces, RFC 5965 ARF, RFC 3834 replies.

Order matters. A DSN is authoritative, so its ``message/delivery-status`` (or RFC 6533
``message/global-delivery-status``) part is read first; an ARF feedback report is a
complaint; then strong auto-reply markers (a vacation notice may quote text that a heuristic
bounce detector mistakes for a failure); then flufl.bounce (Mailman's detectors) for
non-standard bounces (Exim, qmail, old Exchange...), also when a DSN part names nobody; then,
for such a DSN, the addresses its human-readable part lists; and last a bare
``Auto-Submitted`` header, which Postfix and Exim also put on their bounces.

What a failure *means* (hard, soft, policy, the message's size...) is decided by
``distributor.mail.outcomes`` from the status code and the diagnostic words; this module only
finds them. Every step is linear in the size of the message, and nesting deeper than any real
report is refused before the stdlib parser (which recurses) sees it.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

from flufl.bounce import all_failures

from distributor.bounces import dsn
from distributor.bounces.models import Classification
from distributor.logs import get_logger
from distributor.mail.outcomes import (
    BounceKind,
    classify_report,
    enhanced_status,
    says_no_such_user,
)

log = get_logger(__name__)

# A real report nests three or four levels (report > returned message > its alternatives);
# counting every multipart or message/* part bounds the depth before the recursive parser runs.
MAX_NESTED_PARTS = 100
_NESTED_PART = re.compile(rb"content-type:\s*(?:multipart|message)/", re.I)
_DSN_CONTENT_TYPE = re.compile(
    rb"^(content-type:[ \t]*)message/((?:global-)?delivery-status)", re.I | re.M
)
_MESSAGE_ID_LINE = re.compile(rb"^(?:Message-ID|X-Message-ID):[ \t]*(<[^>\r\n]+>)", re.I | re.M)
_SUBJECT_AUTO = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[ -]?(reply|response)|auto:|"
    r"vacation|away from (my|the) (mail|office)|abwesenheitsnotiz|r[ée]ponse automatique)",
    re.I,
)
# Parts that carry the returned message: never the report's own words or fields.
_RETURNED = {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
_ADDRESS_IN_TEXT = re.compile(
    r"[^\s@<>()\[\],;:\"'`]+@[A-Za-z0-9\u00a0-\uffff][^\s@<>()\[\],;:\"'`]*"
)
_ALONE_ON_LINE = re.compile(r"^\s*(?:[*-]\s*)?<?([^\s@<>]+@[^\s@<>]+?)>?\s*:?\s*$")
# Where a non-MIME bounce starts quoting the returned message.
_RETURNED_START = re.compile(
    r"^(?:received:|-+.*(?:original message|copy of (?:the|your) message|below this line"
    r"|message follows|returned message|message headers|undelivered message))",
    re.I,
)
_WARNING_WORDS = re.compile(r"warning only|will be retried|still trying|delayed", re.I)
_WINDOW_LINES = 8
_REFUSAL_CODE = re.compile(r"(?<![\d.])[45]\d\d(?:[ -]|$)")


def _is_reason(line: str) -> bool:
    """Does the line give a refusal: a 4yz/5yz reply, an RFC 3463 code, or the words?"""
    status = enhanced_status(line) or ""
    return status[:1] in ("4", "5") or bool(_REFUSAL_CODE.search(line)) or says_no_such_user(line)


@dataclass(frozen=True)
class FailedRecipient:
    """One per-recipient outcome: from a DSN's fields, or reconstructed for other formats."""

    address: str
    action: str  # failed, delayed (RFC 3464 2.3.3)
    status: str = ""  # RFC 3463 enhanced code, e.g. 5.1.1
    diagnostic: str = ""
    remote_mta: str = ""

    @property
    def kind(self) -> BounceKind:
        """How this failure counts, as the one outcome authority reads it."""
        action = "failed" if self.action.startswith(("fail", "error")) else self.action
        verdict = classify_report(self.status, self.diagnostic, action=action or "failed")
        return verdict.kind or BounceKind.SOFT


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
    detector: str = ""  # rfc3464, arf, flufl, text, rfc3834
    recipients: list[FailedRecipient] = field(default_factory=list)
    feedback: FeedbackReport | None = None
    verp_tokens: list[str] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)
    summary: str = ""


def best_status(status_field: str, diagnostic: str) -> str:
    """The RFC 3463 code of a report: its Status, unless that is a generic x.0.0 and the
    diagnostic names a specific one of the same class; else the diagnostic's own code."""
    status = enhanced_status(status_field) or "" if status_field else ""
    from_diagnostic = enhanced_status(diagnostic) or ""
    if not status:
        return from_diagnostic
    if status.endswith(".0.0") and from_diagnostic[:1] == status[:1]:
        return from_diagnostic or status
    return status


def _report_parts(msg: Message) -> list[Message]:
    """The report's own parts, outermost first, without descending into returned messages."""
    found: list[Message] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        found.append(part)
        ctype = part.get_content_type()
        if part is not msg and (ctype in _RETURNED or ctype.startswith("message/")):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
    return found


class _HumanText:
    """The report's human-readable words (its text parts, up to any quoted original), with
    every address it mentions indexed once, so each lookup costs the same however many
    recipients a report lists."""

    def __init__(self, parts: list[Message]) -> None:
        lines: list[str] = []
        for part in parts:
            if part.get_content_type() != "text/plain":
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            try:
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # a charset Python does not know
                text = payload.decode("utf-8", "replace")
            for line in text.splitlines():
                if _RETURNED_START.match(line):
                    break
                lines.append(line.strip())
        self.lines = lines
        self._where: dict[str, int] | None = None
        self._named: dict[int, list[str]] = {}  # line -> the addresses it names
        self._reason: str | None = None

    @property
    def where(self) -> dict[str, int]:
        """Each address the words name -> the first line naming it (built on first use)."""
        if self._where is None:
            self._where = {}
            for index, line in enumerate(self.lines):
                if "@" not in line:
                    continue
                named = [m.group(0).rstrip(".").lower() for m in _ADDRESS_IN_TEXT.finditer(line)]
                self._named[index] = named
                for address in named:
                    self._where.setdefault(address, index)
        return self._where

    def near(self, address: str, others: set[str]) -> str:
        """The lines from ``address`` on, up to the next recipient named: where MTAs explain.

        A session transcript there is cut down to its refusals (4yz/5yz replies, RFC 3463
        codes, "no such user" words), so the greeting's ``220`` is not read as the answer.
        """
        start = self.where.get(address)
        if start is None:
            return ""
        window: list[str] = []
        for index in range(start, min(start + 4 * _WINDOW_LINES, len(self.lines))):
            line = self.lines[index]
            named = self._named.get(index, ())
            if window and any(a != address and a in others for a in named):
                break
            if line:
                window.append(line)
            if len(window) >= 3 * _WINDOW_LINES:
                break
        reasons = [line for line in window[1:] if _is_reason(line)]
        if reasons:
            return " ".join([window[0], *reasons])[:1000]
        return " ".join(window[:_WINDOW_LINES])[:1000]

    def reason(self) -> str:
        """The first line anywhere in the words that gives a refusal's code or says the
        mailbox does not exist (Exchange and Domino put it far from the address)."""
        if self._reason is None:
            self._reason = next((line[:500] for line in self.lines if _is_reason(line)), "")
        return self._reason

    def explain(self, address: str, others: set[str]) -> str:
        window = self.near(address, others)
        if len(others) <= 1 and not _is_reason(window) and self.reason():
            # The only recipient: a refusal anywhere in the words is about it.
            first = self.lines[self.where[address]] if address in self.where else ""
            return f"{first} {self.reason()}".strip()
        return window

    def lone_addresses(self, exclude: set[str]) -> list[str]:
        """Addresses standing alone on a line ("The following recipients failed:" lists)."""
        found: list[str] = []
        for line in self.lines:
            match = _ALONE_ON_LINE.match(line) if "@" in line else None
            if match:
                address = dsn.mailbox(match.group(1))
                if address and address not in exclude and address not in found:
                    found.append(address)
        return found


def _read_dsn(parts: list[Message]) -> tuple[bool, list[FailedRecipient]]:
    """(whether there is a DSN part, the recipients it names with a usable address)."""
    dsn_parts = [p for p in parts if dsn.is_report_part(p)]
    recipients: dict[str, FailedRecipient] = {}
    for part in dsn_parts:
        for fields in dsn.read_report(part):
            if fields.address and fields.address not in recipients:
                recipients[fields.address] = FailedRecipient(
                    address=fields.address,
                    action=fields.action,
                    status=fields.status,
                    diagnostic=fields.diagnostic,
                    remote_mta=fields.remote_mta,
                )
    return bool(dsn_parts), list(recipients.values())


def _read_arf(parts: list[Message]) -> FeedbackReport | None:
    for part in parts:
        if part.get_content_type() != "message/feedback-report":
            continue
        found = dsn.blocks(dsn.part_text(part))
        fields = found[0] if found else {}
        return FeedbackReport(
            feedback_type=fields.get("feedback-type", "abuse").strip().lower() or "abuse",
            user_agent=fields.get("user-agent", "").strip()[:255],
            original_rcpt_to=dsn.mailbox(fields.get("original-rcpt-to", "")),
            original_mail_from=dsn.mailbox(fields.get("original-mail-from", "")),
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


def _with_diagnostics(recipients: list[FailedRecipient], text: _HumanText) -> list[FailedRecipient]:
    """Fill in a reason from the human-readable part where the fields gave none."""
    addresses = {r.address for r in recipients}
    out = []
    for r in recipients:
        if r.diagnostic and (r.status or enhanced_status(r.diagnostic)):
            out.append(r)
            continue
        found = text.explain(r.address, addresses)
        diagnostic = f"{r.diagnostic} {found}".strip() if found else r.diagnostic
        status = best_status(r.status, diagnostic)
        out.append(FailedRecipient(r.address, r.action, status, diagnostic[:2000], r.remote_mta))
    return out


def _read_heuristic(msg: Message) -> list[FailedRecipient]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:
        # A detector choking on a malformed message must not make it a poison pill that is
        # retried forever; it is then simply not a bounce it recognises. One line, no
        # traceback: anyone can send us such a message.
        log.warning("bounces.detector_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return []
    recipients = []
    for action, found in (("failed", permanent), ("delayed", temporary)):
        for raw_address in sorted(found):
            address = raw_address.decode("utf-8", "replace").strip().lower()
            if address:
                recipients.append(FailedRecipient(address=address, action=action))
    return recipients


def _dsn_fields_in_headers(msg: Message) -> list[FailedRecipient]:
    """Some MTAs put the per-recipient fields among the report's own headers instead."""
    if not (msg.get("Final-Recipient") or msg.get("Original-Recipient")):
        return []
    fields = {
        name.lower(): " ".join(str(value).split())
        for name, value in msg.items()
        if name.lower() in ("final-recipient", "original-recipient", "action", "status")
    }
    found = dsn.recipient_fields(fields, "")
    if not found.address:
        return []
    return [
        FailedRecipient(found.address, found.action or "failed", found.status, found.diagnostic)
    ]


def _read_text(msg: Message, text: _HumanText, bounce_domain: str) -> list[FailedRecipient]:
    """The addresses a DSN without per-recipient fields lists in its words (or in Exim's
    ``X-Failed-Recipients``)."""
    exclude = {dsn.mailbox(str(msg.get(name, "")).strip()) for name in ("From", "To", "Sender")} | {
        ""
    }
    addresses = [
        a
        for value in msg.get_all("X-Failed-Recipients") or []
        for a in (dsn.mailbox(x) for x in str(value).split(","))
        if a
    ] or text.lone_addresses(exclude)
    addresses = [a for a in addresses if not a.endswith("@" + bounce_domain.lower())]
    words = " ".join(text.lines[:40])
    action = "delayed" if _WARNING_WORDS.search(words) else "failed"
    return [FailedRecipient(address=a, action=action) for a in addresses]


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
    report = ParsedReport(
        classification=Classification.UNRECOGNISED,
        verp_tokens=_verp_tokens(raw, envelope_to, bounce_domain),
        original_message_ids=_original_message_ids(raw),
    )
    if len(_NESTED_PART.findall(raw)) > MAX_NESTED_PARTS:
        report.summary = f"more than {MAX_NESTED_PARTS} nested MIME parts; not read"
        return report
    try:
        return _classify(report, raw, bounce_domain)
    except RecursionError:
        report.summary = "MIME structure too deep to read"
        return report


def _parse(raw: bytes) -> Message:
    # compat32 keeps delivery-status parts as lists of header blocks, as flufl.bounce expects.
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _classify(report: ParsedReport, raw: bytes, bounce_domain: str) -> ParsedReport:
    # The stdlib parser builds one message object per delivery-status block, which costs
    # more than everything else together on a report with thousands of recipients. Read
    # under another name, the part stays text and ``dsn.read_report`` applies the grammar.
    as_text = _DSN_CONTENT_TYPE.sub(rb"\1" + dsn.TEXT_PREFIX.encode() + rb"\2", raw)
    msg = _parse(as_text)
    parts = _report_parts(msg)
    text = _HumanText(parts)
    strong_auto, weak_auto = auto_reply_markers(msg)

    has_dsn, recipients = _read_dsn(parts)
    if recipients:
        report.detector = "rfc3464"
        return _from_recipients(report, _with_diagnostics(recipients, text))

    feedback = _read_arf(parts)
    if feedback is not None:
        report.detector = "arf"
        report.classification = Classification.COMPLAINT
        report.feedback = feedback
        report.summary = (
            f"ARF {feedback.feedback_type} report from {feedback.user_agent or 'unknown'}"
        )
        return report

    if strong_auto and not has_dsn:
        report.detector = "rfc3834"
        report.classification = Classification.AUTO_REPLY
        report.summary = "auto-reply (vacation or out-of-office notice); ignored"
        return report

    heuristic = _read_heuristic(msg if as_text == raw else _parse(raw))
    if heuristic:
        report.detector = "flufl"
        return _from_recipients(report, _with_diagnostics(heuristic, text))

    in_headers = _dsn_fields_in_headers(msg)
    if in_headers:
        report.detector = "rfc3464"
        return _from_recipients(report, _with_diagnostics(in_headers, text))

    if has_dsn:
        # A DSN part that names nobody (some gateways send only the per-message fields).
        listed = _read_text(msg, text, bounce_domain)
        if listed:
            report.detector = "text"
            return _from_recipients(report, _with_diagnostics(listed, text))

    if weak_auto or strong_auto:
        report.detector = "rfc3834"
        report.classification = Classification.AUTO_REPLY
        report.summary = "auto-submitted message (RFC 3834); ignored"
        return report
    report.summary = "not a bounce, complaint or auto-reply we recognise"
    return report


def _listed(items: Iterable[str], shown: int = 20) -> str:
    """The first few, and how many more: a summary line, not a copy of the report."""
    items = list(items)
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _from_recipients(report: ParsedReport, recipients: list[FailedRecipient]) -> ParsedReport:
    failed = [r for r in recipients if r.action.startswith(("fail", "error"))]
    delayed = [r for r in recipients if r.action.startswith("delay")]
    if failed:
        report.classification = Classification.BOUNCE
        report.recipients = failed
        report.summary = _listed(f"{r.address} {r.status or 'no status'}" for r in failed)
    elif delayed:
        report.classification = Classification.DELAY
        report.recipients = delayed
        report.summary = "delayed: " + _listed(r.address for r in delayed)
    else:
        report.classification = Classification.OTHER
        report.summary = (
            "delivery report without failures ("
            + ", ".join(sorted({r.action or "no action" for r in recipients}))
            + ")"
        )
    return report
