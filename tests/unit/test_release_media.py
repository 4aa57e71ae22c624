"""Lead photos and attachments: validation errors people understand, re-encoded outputs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from distributor.errors import ValidationFailed
from distributor.releases import media
from distributor.settings import Settings
from distributor.storage import storage_for
from tests.support.releases import image_bytes, make_release


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_photo_is_reencoded_at_web_and_email_widths(settings: Settings) -> None:
    photo = media.process_photo(io.BytesIO(image_bytes(2400, 1600)), storage_for(settings))
    with Image.open(
        io.BytesIO(storage_for(settings).read(media.photo_key(photo.key, "web")))
    ) as web:
        assert (web.format, web.size) == ("JPEG", (1200, 800))
    with Image.open(
        io.BytesIO(storage_for(settings).read(media.photo_key(photo.key, "email")))
    ) as email:
        assert (email.format, email.size) == ("JPEG", (600, 400))


def test_transparent_images_are_flattened_on_white(settings: Settings) -> None:
    image = Image.new("RGBA", (640, 400), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    photo = media.process_photo(io.BytesIO(out.getvalue()), storage_for(settings))
    with Image.open(
        io.BytesIO(storage_for(settings).read(media.photo_key(photo.key, "email")))
    ) as email:
        assert email.getpixel((10, 10))[0] > 240  # white, not black


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.7 not a photo", "not an image"),
        (b"", "empty"),
        (b"GIF89a broken", "not an image"),
        (_bomb_png(20_000, 20_000), "pixels"),
        (image_bytes(120, 80), "too small"),
    ],
    ids=["pdf", "empty", "truncated", "bomb", "tiny"],
)
def test_bad_photos_are_refused_with_a_clear_message(
    settings: Settings, data: bytes, message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        media.process_photo(io.BytesIO(data), storage_for(settings))
    assert message in caught.value.message


def test_a_huge_photo_file_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "MAX_PHOTO_BYTES", 10_000)
    with pytest.raises(ValidationFailed) as caught:
        media.process_photo(io.BytesIO(image_bytes(1000, 1000, "BMP")), storage_for(settings))
    assert "too large" in caught.value.message


def test_replacing_a_photo_removes_the_old_files_after_commit(
    session: Session, settings: Settings
) -> None:
    release = make_release(session)
    media.set_photo(session, release, io.BytesIO(image_bytes()), storage_for(settings))
    first = release.photo_key
    assert first is not None
    session.commit()
    media.set_photo(session, release, io.BytesIO(image_bytes()), storage_for(settings))
    assert storage_for(settings).exists(media.photo_key(first, "web"))  # not before the commit
    session.commit()
    assert not storage_for(settings).exists(media.photo_key(first, "web"))
    assert release.photo_key is not None
    assert storage_for(settings).exists(media.photo_key(release.photo_key, "web"))


def test_attachments_must_be_pdf_or_images(session: Session, settings: Settings) -> None:
    release = make_release(session)
    pdf = media.add_attachment(
        session,
        release,
        io.BytesIO(b"%PDF-1.4\n%...\n"),
        "../../Report 2026.pdf",
        storage_for(settings),
    )
    assert (pdf.content_type, pdf.filename) == ("application/pdf", "Report 2026.pdf")
    png = media.add_attachment(
        session, release, io.BytesIO(image_bytes()), "chart.bin", storage_for(settings)
    )
    assert (png.content_type, png.filename) == ("image/png", "chart.png")
    with pytest.raises(ValidationFailed):
        media.add_attachment(
            session,
            release,
            io.BytesIO(b"MZ\x90\x00 executable"),
            "report.pdf",
            storage_for(settings),
        )
    with pytest.raises(ValidationFailed):
        media.add_attachment(
            session, release, io.BytesIO(b"<html>"), "page.html", storage_for(settings)
        )


def test_attachments_are_size_limited(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "MAX_ATTACHMENT_BYTES", 1000)
    release = make_release(session)
    with pytest.raises(ValidationFailed) as caught:
        media.add_attachment(
            session, release, io.BytesIO(b"%PDF-" + b"0" * 2000), "a.pdf", storage_for(settings)
        )
    assert "too large" in caught.value.message
