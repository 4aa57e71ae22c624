"""The one road every outgoing mail takes: headers, envelope sender, DKIM, hand-over.

Release mails and digests are assembled byte by byte in the delivery package (they are
compiled once and filled per recipient); confirmation and staff test mails are built here.
All of them take their ``Date``, envelope sender and DKIM signature from this module, so a
confirmation mail bounces to the bounce domain like a release does and is signed like one:

* ``Date`` with a numeric zone, ``+0000`` (RFC 5322 3.3: ``GMT`` is obsolete syntax that
  must not be generated);
* ``Message-ID`` on our own domain (Gmail refuses mail without one);
* a VERP envelope sender ``bounces+<opaque token>@<bounce domain>``, so a bounce names what
  it is about without being parsed;
* quoted-printable bodies with lines of at most 76 octets (RFC 2045 6.7);
* a DKIM signature (RFC 6376) when signing is configured.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import secrets
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from distributor.mail.dkim import load_signer
from distributor.mail.rendering import RenderedEmail
from distributor.mail.transport import MailTransport
from distributor.settings import Settings

_FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\x00")
# RFC 2045 6.7 (5): encoded body lines of at most 76 characters. The stdlib's default, 78,
# is RFC 5322's header limit and stays for the headers (a 76 limit folds them oddly).
_BODY_POLICY = email.policy.SMTP.clone(max_line_length=76)


@dataclass(frozen=True)
class OutgoingMail:
    """One message ready for the relay: who bounces get back to, who gets it, the bytes."""

    envelope_from: str
    recipient: str
    message_id: str
    message: bytes


def date_header(when: float | None = None) -> str:
    """``Mon, 30 Nov 2026 14:50:10 +0000``: the numeric zone, never ``GMT``."""
    moment = dt.datetime.fromtimestamp(time.time() if when is None else when, dt.UTC)
    return format_datetime(moment.replace(microsecond=0))


def new_token() -> str:
    """An opaque VERP token for a mail that is not a release delivery."""
    return secrets.token_urlsafe(16)


def verp_sender(settings: Settings, token: str) -> str:
    """The envelope sender that brings a bounce back to us with ``token`` in it."""
    return f"bounces+{token}@{settings.bounce_domain}"


def sign(settings: Settings, message: bytes) -> bytes:
    """The message with a DKIM signature on top when signing is configured."""
    signer = load_signer(settings)
    return signer.sign(message) if signer is not None else message


def clean_header(value: str) -> str:
    """Refuse CR, LF and NUL in header values built from user input (header injection)."""
    if any(ch in value for ch in _FORBIDDEN_HEADER_CHARS):
        raise ValueError("header value contains a line break or NUL")
    return value


def build_transactional(
    settings: Settings,
    *,
    rendered: RenderedEmail,
    from_name: str,
    to_address: str,
    reply_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> OutgoingMail:
    """A confirmation or test mail: multipart/alternative, signed, with a VERP sender."""
    from distributor.mail.addresses import needs_smtputf8, wire_address

    token = new_token()
    recipient = wire_address(to_address)
    message_id = f"<{token}@{settings.from_domain}>"
    # CRLF line ends, as the wire needs. A mailbox with a non-ASCII local part goes in a
    # raw UTF-8 header (RFC 6532), so the message needs SMTPUTF8 (the transport asks for it).
    policy = email.policy.SMTPUTF8 if needs_smtputf8(recipient) else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    msg["Message-ID"] = message_id
    msg["Date"] = date_header()
    msg["From"] = Address(display_name=clean_header(from_name), addr_spec=settings.mail_from)
    msg["To"] = clean_header(recipient)
    if reply_to:
        msg["Reply-To"] = clean_header(reply_to)
    msg["Subject"] = clean_header(rendered.subject)
    for key, value in (extra_headers or {}).items():
        msg[key] = clean_header(value)
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    # Quoted-printable keeps every line short (compiled MJML has very long lines).
    for subtype, content in (("plain", rendered.text), ("html", rendered.html)):
        part = EmailMessage(policy=_BODY_POLICY)
        part.set_content(content, subtype=subtype, cte="quoted-printable")
        del part["MIME-Version"]
        msg.attach(part)
    raw = sign(settings, msg.as_bytes())
    return OutgoingMail(verp_sender(settings, token), recipient, message_id, raw)


def send(transport: MailTransport, mail: OutgoingMail) -> None:
    """Hand one message to the relay; raises what the transport raises."""
    transport.send(mail.envelope_from, [mail.recipient], mail.message)
