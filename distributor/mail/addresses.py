"""The one check of an email address, used wherever one comes in: API, subscribe form, CSV
import, staff forms, test mails.

We accept only what we can send. Domains are kept and sent in their IDNA A-label form
(``xn--...``, IDNA 2008 with UTS #46 mapping, through email-validator and the ``idna``
package), which every relay takes. A local part with non-ASCII characters needs SMTPUTF8
(RFC 6531) at every hop; the bulk sender does not ask for it yet, so such an address is
refused here with a message that says why, instead of being accepted and failing at send.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

# RFC 5322 dot-atom of plain ASCII "atext": the local part of nearly every real address.
_ASCII_DOT_ATOM = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


class InvalidAddress(EmailNotValidError):
    """An address we cannot send to; the message says why, for the person who typed it."""


@lru_cache(maxsize=16384)
def _checked_domain(domain: str, check_dns: bool) -> str | EmailNotValidError:
    try:
        return str(validate_email(f"a@{domain}", check_deliverability=check_dns).ascii_domain)
    except EmailNotValidError as exc:
        return exc


def clear_domain_cache() -> None:
    """Forget checked domains: DNS answers and memory should last one import, no longer."""
    _checked_domain.cache_clear()


def normalise_address(raw: str, *, check_deliverability: bool = False) -> str:
    """The lower-cased address with its domain in IDNA form; raises ``InvalidAddress``.

    Addresses on few domains (an import) cost one domain check each: email-validator spends
    most of its time on the domain, so a plain ASCII local part is checked here.
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
    if at and not local.isascii():
        raise InvalidAddress(
            f"{text!r} has characters before the @ that our mail relay cannot deliver to "
            "(it needs SMTPUTF8, RFC 6531). Please give an address with a plain-ASCII name "
            "part; accented or non-Latin domain names are fine."
        )
    try:
        result = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return str(result.ascii_email or result.normalized).lower()


def wire_address(address: str) -> str:
    """An address as it goes into RCPT TO and the To header: the domain in IDNA form.

    Addresses stored before domains were kept in that form are converted here; one we cannot
    convert is returned as it is, for the relay to refuse.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or domain.isascii():
        return address.strip()
    checked = _checked_domain(domain, False)
    return address.strip() if isinstance(checked, EmailNotValidError) else f"{local}@{checked}"
