"""Building RFC 5322 messages for single transactional mails.

Bulk release mail has its own fast assembly in the delivery package; this builder is for
one-off mails (test sends, confirmations) where clarity matters more than microseconds.
"""

from __future__ import annotations

import email.policy
import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from distributor.db import utcnow
from distributor.mail.rendering import RenderedEmail

_FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\x00")


def clean_header(value: str) -> str:
    """Refuse CR, LF and NUL in header values built from user input (header injection)."""
    if any(ch in value for ch in _FORBIDDEN_HEADER_CHARS):
        raise ValueError("header value contains a line break or NUL")
    return value


def build_message(
    *,
    rendered: RenderedEmail,
    from_name: str,
    from_address: str,
    to_address: str,
    reply_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message with explicit Message-ID and Date on our domain."""
    # The SMTP policy writes CRLF line endings, as the wire needs.
    msg = EmailMessage(policy=email.policy.SMTP)
    domain = from_address.rpartition("@")[2]
    msg["Message-ID"] = make_msgid(idstring=secrets.token_hex(8), domain=domain)
    msg["Date"] = format_datetime(utcnow())
    msg["From"] = Address(display_name=clean_header(from_name), addr_spec=from_address)
    msg["To"] = clean_header(to_address)
    if reply_to:
        msg["Reply-To"] = clean_header(reply_to)
    msg["Subject"] = clean_header(rendered.subject)
    for key, value in (extra_headers or {}).items():
        msg[key] = clean_header(value)
    # Quoted-printable keeps every line under SMTP's 998-octet limit (RFC 5321 4.5.3.1.6);
    # compiled MJML has very long lines.
    msg.set_content(rendered.text, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return msg
