"""Optional DKIM signing of outgoing mail (RFC 6376, rsa-sha256, relaxed/relaxed).

Signing happens per message: the To header and the per-recipient links differ, so neither the
header hash nor the body hash can be shared between recipients. dkimpy's signer does the RSA
operation in pure Python (~20-30 ms per message on our 2-core machine, which would cap a send
near 40 msg/s), so the signature is computed here with OpenSSL through ``cryptography``;
dkimpy verifies our signatures in the tests. ``benchmarks/bench_render.py`` prints the cost.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from distributor.settings import Settings

# Gmail and Yahoo expect the one-click unsubscribe headers inside the signature (RFC 8058 4).
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "mime-version",
    "content-type",
)
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_UNFOLD = re.compile(rb"\r\n(?=[ \t])")


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation (RFC 6376 3.4.4)."""
    body = _WSP_RUN.sub(b" ", _WSP_EOL.sub(b"\r\n", body))
    if body.endswith(b" "):
        body = body[:-1]
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalisation (RFC 6376 3.4.2), without the final CRLF."""
    value = _WSP_RUN.sub(b" ", _UNFOLD.sub(b"", value)).strip(b" \t\r\n")
    return name.strip().lower() + b":" + value


def _headers(head: bytes) -> dict[bytes, bytes]:
    """Header name (lower case) -> raw value; the last instance wins (RFC 6376 5.4.2)."""
    found: dict[bytes, bytes] = {}
    for field in re.split(rb"\r\n(?![ \t])", head):
        name, sep, value = field.partition(b":")
        if sep:
            found[name.strip().lower()] = value
    return found


class DkimSigner:
    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        key = serialization.load_pem_private_key(private_key, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("DKIM_PRIVATE_KEY_PATH must hold an RSA private key (PEM)")
        self._key = key
        self.selector = selector
        self.domain = domain

    def signature(self, message: bytes) -> bytes:
        """The ``DKIM-Signature`` header line (with CRLF) for ``message``."""
        head, _, body = message.partition(b"\r\n\r\n")
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
        present = _headers(head + b"\r\n")
        names = [n for n in SIGNED_HEADERS if n.encode() in present]
        tags = (
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector};"
            f" t={int(time.time())}; h={':'.join(names)}; bh={body_hash}; b="
        )
        signed = b"".join(
            canonical_header(n.encode(), present[n.encode()]) + b"\r\n" for n in names
        )
        signed += canonical_header(b"dkim-signature", tags.encode())
        sig = base64.b64encode(self._key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode()
        # Folding at "; " and inside b= changes nothing after relaxed canonicalisation.
        folded = (
            tags.replace("; t=", ";\r\n t=")
            .replace("; bh=", ";\r\n bh=")
            .replace("; b=", ";\r\n b=")
        )
        folded += "\r\n ".join(sig[i : i + 72] for i in range(0, len(sig), 72))
        return f"DKIM-Signature: {folded}\r\n".encode("ascii")

    def sign(self, message: bytes) -> bytes:
        return self.signature(message) + message


@lru_cache(maxsize=4)
def _read_key(path: str) -> bytes:
    return Path(path).read_bytes()


def load_signer(settings: Settings) -> DkimSigner | None:
    """A signer when ``DKIM_SELECTOR`` and ``DKIM_PRIVATE_KEY_PATH`` are both set."""
    if not (settings.dkim_selector and settings.dkim_private_key_path):
        return None
    return DkimSigner(
        selector=settings.dkim_selector,
        domain=settings.dkim_domain or settings.from_domain,
        private_key=_read_key(settings.dkim_private_key_path),
    )
