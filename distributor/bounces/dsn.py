"""Reading the machine-readable part of a delivery report: RFC 3464, and RFC 6533 for UTF-8.

RFC 3464 section 2: a ``message/delivery-status`` body is one block of per-message fields,
then one block of per-recipient fields per recipient, separated by blank lines. Real MTAs
put whitespace on the separating line (RFC 5322 would read it as a fold), leave out the
per-message block, or run it into the first recipient's; so a line that is empty or only
whitespace ends a block, and any block that names a recipient is a recipient block.

The address a report is about is the one we sent to: a valid ``Original-Recipient``
(RFC 3464 2.3.1, what the sender gave) before ``Final-Recipient`` (2.3.2, which may be an
alias's target or, through a gateway, an ``x400;`` or ``system;<>`` value that is no mailbox).
RFC 6533 adds ``message/global-delivery-status``: the same fields in UTF-8, and the
``utf-8`` address type with ``\\x{HEX}`` escapes for non-ASCII characters.

Everything here is linear in the size of the part: one pass over its lines.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from distributor.mail.outcomes import enhanced_status

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
# The name the parser reads such a part under, so that it keeps it as text (see parsing).
TEXT_PREFIX = "text/x-distributor-"

_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:[ \t]*(.*)")
_EMBEDDED_UNICODE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")  # RFC 6533 EmbeddedUnicodeChar
_COMMENT = re.compile(r"\([^()]*\)")
# A mailbox as a report names it: no spaces or brackets, one "@", a domain of labels
# (non-ASCII letters allowed for RFC 6531 addresses).
_MAILBOX = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)*\.?")


@dataclass(frozen=True)
class RecipientFields:
    """One per-recipient block, reduced to what bounce handling needs."""

    address: str  # lower-cased mailbox, "" when the block names none we can use
    action: str  # RFC 3464 2.3.3, lower-cased first word
    status: str  # RFC 3463 code from the Status field, "" when it holds none
    diagnostic: str  # Diagnostic-Code text, or the Status field's words when it had no code
    remote_mta: str


def is_report_part(part: Message) -> bool:
    """A ``message/delivery-status`` or RFC 6533 ``message/global-delivery-status`` part."""
    ctype = part.get_content_type()
    return ctype in DSN_TYPES or (
        ctype.startswith(TEXT_PREFIX) and f"message/{ctype[len(TEXT_PREFIX) :]}" in DSN_TYPES
    )


def part_text(part: Message) -> str:
    """The part's body as text, however the stdlib parser stored it.

    Python's parser splits ``message/delivery-status`` into one message per block and reads
    every other ``message/*`` type as an enclosed message; both are joined back into lines
    here so that the block grammar is applied once, by us. 8-bit bytes (RFC 6533 UTF-8)
    arrive as surrogate escapes and are decoded as UTF-8.
    """
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks: list[str] = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            lines = [f"{name}: {value}" for name, value in block.items()]
            body = block.get_payload()
            if isinstance(body, str) and body.strip():
                lines.append(body)
            chunks.append("\n".join(lines))
        text = "\n\n".join(chunks)
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        raw = text.encode("utf-8", "surrogateescape")
        try:
            if encoding == "base64":
                raw = base64.b64decode(b"".join(raw.split()), validate=False)
            elif encoding == "quoted-printable":
                raw = quopri.decodestring(raw)
        except (binascii.Error, ValueError):
            pass
        return raw.decode("utf-8", "replace")
    decoded = part.get_payload(decode=True)
    if isinstance(decoded, bytes):
        return decoded.decode("utf-8", "replace")
    return str(payload or "")


def blocks(text: str) -> list[dict[str, str]]:
    """The field blocks of a report body: lower-cased names, the first of each name kept."""
    found: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                found.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                current[last] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if match is None:
            last = ""  # free text inside the part (some gateways add it): ignored
            continue
        name = match.group(1).lower()
        if name in current:
            last = ""
            continue
        current[name] = match.group(2).strip()
        last = name
    if current:
        found.append(current)
    return found


def _typed(value: str) -> tuple[str, str]:
    """``rfc822; someone@example.org`` -> (``rfc822``, ``someone@example.org``)."""
    kind, sep, rest = value.partition(";")
    if not sep:
        return "", value.strip()
    return kind.strip().lower(), rest.strip()


def mailbox(value: str) -> str:
    """The mailbox an address field names, lower-cased; "" when it names none.

    Only the ``rfc822`` and ``utf-8`` (RFC 6533) address types, or an untyped value that is
    a plain address, can name a mailbox; ``x400;``, ``system;<>`` and the like cannot.
    """
    if not value:
        return ""
    kind, address = _typed(value)
    if kind not in ("", "rfc822", "utf-8"):
        return ""
    if "(" in address:
        address = _COMMENT.sub(" ", address).strip()
    if kind == "utf-8":
        address = _EMBEDDED_UNICODE.sub(lambda m: _codepoint(m.group(1)), address)
    # "utf-8; uMailbox <ASCII alternative>" (RFC 6533 3): the first form is what was sent.
    address = address.split()[0] if address.split() else ""
    address = address.strip("<>").rstrip(".")
    if not _MAILBOX.fullmatch(address):
        return ""
    if not _DOMAIN.fullmatch(address.rpartition("@")[2]):
        return ""
    return address.lower()


def _codepoint(hex_value: str) -> str:
    value = int(hex_value, 16)
    return chr(value) if value <= 0x10FFFF else "\ufffd"


def _diagnostic(fields: dict[str, str]) -> str:
    diagnostic = fields.get("diagnostic-code", "")
    if diagnostic:
        # "smtp; 550 5.1.1 ...": the diagnostic type (RFC 3464 2.3.6) is a single word.
        kind, text = _typed(diagnostic)
        return text if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", kind) else diagnostic
    # Gateways put the reason in fields of their own (X400-Supplementary-Info, X-Diagnostic).
    for name, value in fields.items():
        if "diagnostic" in name or name.endswith("supplementary-info"):
            return value.strip('"')
    return ""


def recipient_fields(fields: dict[str, str], reporting_mta: str) -> RecipientFields:
    address = (
        mailbox(fields.get("original-recipient", ""))
        or mailbox(fields.get("final-recipient", ""))
        or mailbox(fields.get("x-actual-recipient", ""))
    )
    status_field = fields.get("status", "")
    if "(" in status_field:
        status_field = _COMMENT.sub(" ", status_field).strip()
    status = enhanced_status(status_field) or ""
    diagnostic = _diagnostic(fields)
    if status_field and not status:
        # "Status: 553 Exceeded maximum inbound message size": the reply is all there is.
        diagnostic = f"{status_field} {diagnostic}".strip()
    elif status.endswith(".0.0"):
        # A generic code and a specific one of the same class in the diagnostic: the latter.
        specific = enhanced_status(diagnostic) or ""
        if specific[:1] == status[:1]:
            status = specific
    action = fields.get("action", "").split()
    remote = _typed(fields.get("remote-mta", ""))[1] or reporting_mta
    return RecipientFields(
        address=address,
        action=action[0].lower() if action else "",
        status=status,
        diagnostic=" ".join(diagnostic.split())[:2000],
        remote_mta=remote[:255],
    )


def read_report(part: Message) -> list[RecipientFields]:
    """Every per-recipient block of one delivery-status part, in order."""
    found = blocks(part_text(part))
    reporting_mta = ""
    recipients: list[RecipientFields] = []
    for index, fields in enumerate(found):
        names_recipient = "final-recipient" in fields or "original-recipient" in fields
        if "reporting-mta" in fields:
            reporting_mta = _typed(fields["reporting-mta"])[1]
        if index == 0 and not names_recipient:
            continue  # the per-message fields
        if names_recipient or "action" in fields:
            recipients.append(recipient_fields(fields, reporting_mta))
    return recipients
