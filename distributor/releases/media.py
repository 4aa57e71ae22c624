"""A release's lead photo and attachments, kept in the media storage.

The photo is processed as every stored photo is (``distributor.photos``). Attachments keep
their bytes but must really be a PDF or an image (checked by signature).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from distributor.db import after_commit
from distributor.errors import ValidationFailed
from distributor.photos import MAX_PHOTO_BYTES as MAX_PHOTO_BYTES
from distributor.photos import PHOTO_WIDTHS as PHOTO_WIDTHS
from distributor.photos import ProcessedPhoto, delete_photo_files, read_limited
from distributor.photos import photo_key as photo_key
from distributor.photos import process_photo as _process_photo
from distributor.releases.models import Attachment, Release
from distributor.storage import MediaStorage

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_ATTACHMENTS = 10

_SIGNATURES: list[tuple[bytes, str, str]] = [
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
]


def process_photo(stream: IO[bytes], storage: MediaStorage) -> ProcessedPhoto:
    """Validate an uploaded lead photo and store it re-encoded at web and email widths."""
    # The limit is read here, at call time: it is this module's setting.
    return _process_photo(stream, storage, max_bytes=MAX_PHOTO_BYTES)


def attachment_key(stored_name: str) -> str:
    return f"attachments/{stored_name}"


def set_photo(session: Session, release: Release, stream: IO[bytes], storage: MediaStorage) -> None:
    """Replace a release's lead photo with an uploaded one."""
    processed = process_photo(stream, storage)
    old = release.photo_key
    release.photo_key = processed.key
    session.flush()
    if old:
        after_commit(session, lambda: delete_photo_files(storage, old))


def remove_photo(session: Session, release: Release, storage: MediaStorage) -> None:
    old = release.photo_key
    release.photo_key = None
    session.flush()
    if old:
        after_commit(session, lambda: delete_photo_files(storage, old))


def _sniff(data: bytes) -> tuple[str, str] | None:
    for signature, content_type, ext in _SIGNATURES:
        if data.startswith(signature):
            return content_type, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", ".webp"
    return None


def _safe_filename(name: str, ext: str) -> str:
    base = Path(name.replace("\\", "/")).name
    cleaned = "".join(c for c in base if c.isprintable() and c not in '"<>:|?*;').strip(" .")
    stem = Path(cleaned).stem[:200] or "attachment"
    return f"{stem}{ext}"


def add_attachment(
    session: Session, release: Release, stream: IO[bytes], filename: str, storage: MediaStorage
) -> Attachment:
    """Store a PDF or image attached to a release."""
    if len(release.attachments) >= MAX_ATTACHMENTS:
        raise ValidationFailed(f"A release can have {MAX_ATTACHMENTS} attachments at most.")
    data = read_limited(stream, MAX_ATTACHMENT_BYTES, "attachment")
    sniffed = _sniff(data)
    if sniffed is None:
        raise ValidationFailed("Attachments must be PDF documents or JPEG, PNG or WebP images.")
    content_type, ext = sniffed
    stored_name = f"{secrets.token_hex(16)}{ext}"
    storage.put(attachment_key(stored_name), data, content_type)
    attachment = Attachment(
        filename=_safe_filename(filename, ext),
        stored_name=stored_name,
        content_type=content_type,
        size=len(data),
    )
    release.attachments.append(attachment)
    session.flush()
    return attachment


def delete_attachment(
    session: Session, release: Release, attachment: Attachment, storage: MediaStorage
) -> None:
    stored = attachment.stored_name
    release.attachments.remove(attachment)  # delete-orphan removes the row
    session.flush()
    after_commit(session, lambda: storage.delete(attachment_key(stored)))
