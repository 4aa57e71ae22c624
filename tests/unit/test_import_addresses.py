"""The one address check agrees with email-validator on every kind of address.

Its reference: no SMTPUTF8 (our relay road does not offer it), domains in their IDNA form.
"""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from distributor.audience.csv_io import normalise_import_address

SAMPLES = [
    "ana@example.org",
    "Ana.Lima@Example.ORG",
    "o'brien+press@desk.example.net",
    "a.b.c@sub.domain.example.com",
    "x@EXAMPLE.COM",
    "zoë@example.org",
    "user@bücher.example",
    "user@xn--bcher-kva.example",
    '"quoted local"@example.org',
    "double..dot@example.org",
    ".leading@example.org",
    "trailing.@example.org",
    "no-at-sign.example.org",
    "two@@example.org",
    "user@-bad-.example.org",
    "user@localhost",
    "user@example",
    "user@123.123.123.123",
    "user@[127.0.0.1]",
    "spaces in@example.org",
    "a" * 64 + "@example.org",
    "a" * 65 + "@example.org",
    "b@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 50 + ".com",
    "user@exa_mple.org",
    "user@example.invalid",
    "user@example.local",
    "",
    "@example.org",
]


def _reference(address: str) -> str | None:
    try:
        result = validate_email(address, allow_smtputf8=False, check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(result.ascii_email or result.normalized).lower()


@pytest.mark.parametrize("address", SAMPLES)
def test_fast_path_matches_email_validator(address: str) -> None:
    try:
        ours: str | None = normalise_import_address(address)
    except EmailNotValidError:
        ours = None
    assert ours == _reference(address)
