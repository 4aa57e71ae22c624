"""The per-message shortcuts of the send path produce exactly what the standard library does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random

import pytest

from distributor.delivery import mime
from distributor.mail import verp
from distributor.mail.keyed_hash import KeyedHash


@pytest.mark.parametrize("digestmod", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("key_length", [0, 1, 32, 64, 65, 200])
def test_keyed_hash_is_hmac(digestmod: str, key_length: int) -> None:
    rng = random.Random(key_length)
    key = rng.randbytes(key_length)
    mac = KeyedHash(key, digestmod)
    for length in (0, 1, 7, 64, 1000):
        message = rng.randbytes(length)
        assert mac.digest(message) == hmac.digest(key, message, digestmod)


def test_verp_mac_is_base32_of_hmac() -> None:
    rng = random.Random(5)
    for i in range(500):
        secret = rng.randbytes(20).hex()
        reference = f"d{rng.randrange(10**12)}"
        key = verp._purpose_key(secret, verp.BOUNCE)
        digest = hmac.new(key, reference.encode(), hashlib.sha256).digest()
        assert verp._mac(secret, verp.BOUNCE, reference) == (
            base64.b32encode(digest).decode()[:20].lower()
        ), i


def _encoded_line(data: bytes) -> bytes:
    """What ``mime._qp_line`` made before its shortcut for plain values."""
    encoded = binascii.b2a_qp(data, istext=True)
    if len(encoded) >= mime._QP_LINE_MAX:
        encoded = encoded.replace(b"=\n", mime.SOFT_BREAK)
    return mime._soft_end(mime.dot_safe(encoded))


def test_plain_values_skip_the_encoder_with_the_same_bytes() -> None:
    rng = random.Random(7)
    alphabet = b" .=\t_-@/:?&" + bytes(range(33, 127)) + "é".encode()
    for _ in range(20_000):
        length = rng.choice([1, 2, 5, 40, 70, 71, 72, 73, 74, 75, 76, 77, 90])
        data = bytes(rng.choice(alphabet) for _ in range(length))
        assert mime._qp_line(data) == _encoded_line(data), data
    for data in (b".", b". ", b"a ", b" a", b"x" * 72, b"x" * 73, b"a=b", b".a"):
        assert mime._qp_line(data) == _encoded_line(data), data
