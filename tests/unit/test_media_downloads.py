"""Downloads carry their credit in XMP (and IPTC IIM in JPEG), read back by exiftool."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from distributor.media import images
from distributor.media.images import Credit, render_download
from tests.support.media import exiftool, photo_with_exif

CREDIT = Credit(
    title="Harbour wall at dawn",
    caption="The new flood wall at Portmere & its <gates>.",
    alt_text="A concrete wall along a harbour at sunrise",
    creator="Jane Doe",
    credit_line="Photo: Jane Doe/Coastline Pictures",
    copyright_notice="© 2026 Coastline Pictures Ltd",
    usage_terms="Editorial use only, with the credit “Photo: Jane Doe/Coastline Pictures”.",
)


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_original_download_carries_credit_and_no_camera_or_location(fmt: str, suffix: str) -> None:
    original = photo_with_exif(fmt=fmt)
    data, content_type, ext = render_download(original, "original", CREDIT)
    assert ext == suffix and content_type == f"image/{ext[1:].replace('jpg', 'jpeg')}"
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.size == (2400, 1600)  # original resolution
    tags = exiftool(data)
    assert tags["XMP-dc:Creator"] in ("Jane Doe", ["Jane Doe"])
    assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"
    assert tags["XMP-dc:Rights"] == "© 2026 Coastline Pictures Ltd"
    assert tags["XMP-xmpRights:UsageTerms"] == CREDIT.usage_terms
    assert tags["XMP-dc:Description"] == CREDIT.caption
    assert tags["XMP-iptcCore:AltTextAccessibility"] == CREDIT.alt_text
    leaked = [k for k in tags if k.startswith(("GPS", "IFD0", "ExifIFD"))]
    assert not leaked, leaked
    assert not any("CameraMaker" in str(v) or "X100" in str(v) for v in tags.values())


def test_jpeg_downloads_also_carry_iptc_iim() -> None:
    data, _, _ = render_download(photo_with_exif(), "web", CREDIT)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.width == images.WEB_WIDTH
    tags = exiftool(data)
    assert tags["IPTC:By-line"] == "Jane Doe"
    assert tags["IPTC:Credit"] == "Photo: Jane Doe/Coastline Pictures"
    assert tags["IPTC:CopyrightNotice"] == "© 2026 Coastline Pictures Ltd"
    assert tags["XMP-photoshop:Credit"] == "Photo: Jane Doe/Coastline Pictures"


def test_uploads_are_checked() -> None:
    from distributor.errors import ValidationFailed

    assert images.check_upload(b"%PDF-1.7 fact sheet").content_type == "application/pdf"
    checked = images.check_upload(photo_with_exif(fmt="PNG"))
    assert checked.is_image and checked.content_type == "image/png" and checked.width == 2400
    for bad in (b"", b"GIF89a not allowed", b"<svg/>", photo_with_exif(width=200, height=100)):
        with pytest.raises(ValidationFailed):
            images.check_upload(bad)


def test_the_largest_size_the_licence_allows_caps_the_original() -> None:
    data, _, _ = render_download(photo_with_exif(), "original", CREDIT, max_width=1000)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.size == (1000, 667)
    web, _, _ = render_download(photo_with_exif(), "web", CREDIT, max_width=800)
    with Image.open(io.BytesIO(web)) as opened:
        assert opened.width == 800
    assert exiftool(data)["XMP-photoshop:Credit"] == CREDIT.credit_line
