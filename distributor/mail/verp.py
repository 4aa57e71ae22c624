"""Single-purpose tokens for the addresses and ids in a message's headers.

A release mail names its delivery in four places: the open pixel and click links (the
delivery's random tracking token, in the body), the VERP envelope sender
``bounces+<token>@<bounce domain>``, the ``mailto:unsubscribe+<token>@...`` of
``List-Unsubscribe`` (RFC 2369) and the ``Message-ID``. Anyone who receives a forwarded copy
sees the body, so none of the header tokens may be derived from what the body shows: each is
``<kind><id>-<mac>``, a keyed HMAC-SHA256 (RFC 2104) of the id under its own purpose, so a
bounce token cannot unsubscribe and a tracking token can do neither. Local parts may be
case-folded by MTAs (RFC 5321 2.4 allows it), so the MAC is lower-case base32.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from distributor.mail.keyed_hash import KeyedHash
from distributor.settings import Settings

BOUNCE = "verp.bounce"
UNSUBSCRIBE = "verp.unsubscribe"
MESSAGE_ID = "verp.message-id"

DELIVERY = "d"  # a release mail: the id is the delivery's
DIGEST = "g"  # a daily digest: the id is the digest mail's

_TOKEN = re.compile(r"([dg])(\d{1,18})-([a-z2-7]{20})", re.IGNORECASE)


@lru_cache(maxsize=64)
def _purpose_key(secret_key: str, purpose: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), purpose.encode("ascii"), hashlib.sha256).digest()


@lru_cache(maxsize=64)
def _purpose_mac(secret_key: str, purpose: str) -> KeyedHash:
    return KeyedHash(_purpose_key(secret_key, purpose), "sha256")


# Two base32 letters (RFC 4648 section 6, lower case) for every 10-bit value.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def _b32_head(digest: bytes) -> str:
    """``base64.b32encode(digest)[:20].lower()``: the first 100 bits as 20 letters, without
    the standard library's pure-Python encoder (a MAC is made for every message sent)."""
    n = int.from_bytes(digest[:13], "big") >> 4
    p = _B32_PAIRS
    # Spelled out: a comprehension and a join cost about twice as much per MAC.
    return (
        p[n >> 90] + p[(n >> 80) & 1023] + p[(n >> 70) & 1023] + p[(n >> 60) & 1023]
        + p[(n >> 50) & 1023] + p[(n >> 40) & 1023] + p[(n >> 30) & 1023]
        + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023]
    )  # fmt: skip


def _mac(secret_key: str, purpose: str, reference: str) -> str:
    return _b32_head(_purpose_mac(secret_key, purpose).digest(reference.encode("ascii")))


def make(settings: Settings, purpose: str, kind: str, ident: int) -> str:
    """The token naming ``kind``/``ident`` for ``purpose``, e.g. ``d42-abcd...``."""
    reference = f"{kind}{ident}"
    return f"{reference}-{_mac(settings.secret_key, purpose, reference)}"


def read(settings: Settings, purpose: str, token: str) -> tuple[str, int] | None:
    """``(kind, id)`` of a genuine token for ``purpose``; None for anything else."""
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        return None
    kind, ident, mac = match.group(1).lower(), match.group(2), match.group(3).lower()
    reference = f"{kind}{int(ident)}"
    for key in settings.signing_keys:
        if hmac.compare_digest(_mac(key, purpose, reference), mac):
            return kind, int(ident)
    return None
