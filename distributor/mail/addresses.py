"""The one check of an email address, used wherever one comes in: API, subscribe form, CSV
import, staff forms, test mails.

We accept only what we can send. Domains are kept and sent in their IDNA A-label form
(``xn--...``, IDNA 2008 with UTS #46 mapping, through email-validator and the ``idna``
package), which every relay takes. A local part with non-ASCII characters ("josé@",
"用户@") needs SMTPUTF8 (RFC 6531) from our relay: such an address is accepted only while
the configured relay advertises SMTPUTF8 (``RelayExtensions``, the startup check's EHLO), and
refused otherwise with a message that says why, instead of being accepted and failing at send.

The domain stays in its A-label form even in an SMTPUTF8 message: RFC 6531 lets
a client use either A-labels or U-labels there, and one stored form per address keeps the
suppression list, deduplication and every non-SMTPUTF8 hop on the same key.
"""

from __future__ import annotations

import re
from collections.abc import Container
from functools import lru_cache
from typing import Protocol

from email_validator import EmailNotValidError, validate_email

# RFC 5322 dot-atom of plain ASCII "atext": the local part of nearly every real address.
_ASCII_DOT_ATOM = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


class InvalidAddress(EmailNotValidError):
    """An address we cannot send to; the message says why, for the person who typed it."""


class RelayExtensions(Protocol):
    """What the configured relay offers, as far as addresses care (``relay_check``)."""

    def smtputf8_refusal(self) -> str | None:
        """None while every relay offers SMTPUTF8; else why a non-ASCII local part cannot
        be sent now, in words for the person who typed it."""


@lru_cache(maxsize=16384)
def _checked_domain(domain: str, check_dns: bool) -> str | EmailNotValidError:
    try:
        return str(validate_email(f"a@{domain}", check_deliverability=check_dns).ascii_domain)
    except EmailNotValidError as exc:
        return exc


def clear_domain_cache() -> None:
    """Forget checked domains: DNS answers and memory should last one import, no longer."""
    _checked_domain.cache_clear()


def needs_smtputf8(address: str) -> bool:
    """Whether mail to ``address`` (domain already in IDNA form) needs SMTPUTF8 (RFC 6531)
    on the wire and UTF-8 headers (RFC 6532): its local part is not plain ASCII."""
    return not address.isascii()


# RFC 6531 section 3.1: a server offering SMTPUTF8 offers 8BITMIME too, and a message to an
# internationalised mailbox goes with BODY=8BITMIME; both must be offered.
UTF8_EXTENSIONS = ("SMTPUTF8", "8BITMIME")


def missing_for_utf8(offered: Container[str]) -> list[str]:
    """The EHLO keywords (upper case) a message to an internationalised mailbox needs and
    ``offered`` (a set or mapping of keywords) lacks; empty when it may go."""
    return [k for k in UTF8_EXTENSIONS if k not in offered]


def normalise_address(
    raw: str, *, check_deliverability: bool = False, relay: RelayExtensions | None = None
) -> str:
    """The lower-cased address with its domain in IDNA form; raises ``InvalidAddress``.

    A non-ASCII local part is accepted only when ``relay`` says it offers SMTPUTF8 (no
    relay given: refused). Addresses on few domains (an import) cost one domain check each:
    email-validator spends most of its time on the domain, so a plain ASCII local part is
    checked here.
    """
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if at and local and len(local) <= 64 and _ASCII_DOT_ATOM.fullmatch(local):
        checked = _checked_domain(domain, check_deliverability)
        if isinstance(checked, EmailNotValidError):
            raise InvalidAddress(str(checked)) from checked
        address = f"{local}@{checked}"
        if len(address) <= 254:
            return address.lower()
    is_international = bool(at) and not local.isascii()
    if is_international:
        refusal = (
            relay.smtputf8_refusal()
            if relay is not None
            else "our mail relay could not be asked whether it takes them"
        )
        if refusal is not None:
            raise InvalidAddress(
                f"{text!r} has characters before the @ that we cannot deliver to now: such "
                f"an address needs SMTPUTF8 (RFC 6531), and {refusal}. Please give an "
                "address with a plain-ASCII name part; accented or non-Latin domain names "
                "are fine."
            )
    try:
        result = validate_email(
            text, check_deliverability=check_deliverability, allow_smtputf8=is_international
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    if result.ascii_email:
        return str(result.ascii_email).lower()
    # RFC 6531: the local part in UTF-8 (NFC, as email-validator normalises it), the domain
    # as A-labels (see the module docstring).
    address = f"{result.local_part}@{result.ascii_domain}".lower()
    # RFC 5321 4.5.3.1: 64 octets before the @ and 254 in all; octets, not characters, also
    # in UTF-8 (RFC 6531), and email-validator counts characters.
    if len(str(result.local_part).encode("utf-8")) > 64 or len(address.encode("utf-8")) > 254:
        raise InvalidAddress(
            f"{text!r} is too long to send: at most 64 bytes before the @ "
            "(an accented or non-Latin letter takes two to four)"
        )
    return address


def wire_address(address: str) -> str:
    """An address as it goes into RCPT TO and the To header: the domain in IDNA form, the
    local part as it is (UTF-8 when it is not ASCII: see ``needs_smtputf8``).

    Addresses stored before domains were kept in that form are converted here; one we cannot
    convert is returned as it is, for the relay to refuse.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or domain.isascii():
        return address.strip()
    checked = _checked_domain(domain, False)
    return address.strip() if isinstance(checked, EmailNotValidError) else f"{local}@{checked}"
