"""Personal room links: one per (release, journalist), unguessable, checked against a row.

A room token is the two ids and an HMAC-SHA256 over them under a key derived from
``SECRET_KEY`` for this purpose alone, so it can be computed while a send renders each
message (about a microsecond, like ``delivery.link_tokens``) and cannot be guessed or
turned into another journalist's or release's link. What makes it revocable is the
``embargo_accesses`` row it must match: a revoked row ends the link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from functools import lru_cache

from distributor.settings import Settings

PURPOSE_ROOM = b"embargo.room"
PURPOSE_BROWSER = b"embargo.new-browser"
_SIGNATURE_CHARS = 32  # 192 bits of the HMAC
_IDS = struct.Struct(">II")
_IDS_CHARS = 11  # base64 of 8 bytes, unpadded


@lru_cache(maxsize=8)
def _key(secret_key: str, purpose: bytes) -> bytes:
    return hmac.digest(secret_key.encode("utf-8"), b"distributor:" + purpose, "sha256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(key: bytes, message: bytes) -> str:
    return _b64(hmac.digest(key, message, "sha256"))[:_SIGNATURE_CHARS]


def room_token(settings: Settings, release_id: int, journalist_id: int) -> str:
    """The personal room token of ``journalist_id`` for ``release_id``."""
    ids = _IDS.pack(release_id, journalist_id)
    return _b64(ids) + _sign(_key(settings.secret_key, PURPOSE_ROOM), ids)


def load_room_token(settings: Settings, token: str) -> tuple[int, int] | None:
    """(release id, journalist id) of a genuine token, else None."""
    if len(token) != _IDS_CHARS + _SIGNATURE_CHARS or not token.isascii():
        return None
    head, signature = token[:_IDS_CHARS], token[_IDS_CHARS:]
    try:
        ids = base64.urlsafe_b64decode(head + "=")
    except (ValueError, TypeError):
        return None
    if len(ids) != _IDS.size or _b64(ids) != head:
        return None
    expected = _sign(_key(settings.secret_key, PURPOSE_ROOM), ids)
    if not hmac.compare_digest(expected, signature):
        return None
    release_id, journalist_id = _IDS.unpack(ids)
    return int(release_id), int(journalist_id)


def new_browser_code(settings: Settings, access_id: int, nonce: str) -> str:
    """The code in a "open the room in this browser" mail, bound to one access and nonce."""
    return _sign(_key(settings.secret_key, PURPOSE_BROWSER), f"{access_id}:{nonce}".encode())


def browser_hash(browser_key: str) -> str:
    """What we store of a browser's room cookie."""
    return hashlib.sha256(browser_key.encode("utf-8")).hexdigest()
