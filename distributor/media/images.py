"""Checking uploads and writing the downloads journalists get, with their credit inside.

Every image download is re-encoded from the stored original: that applies the EXIF
orientation and drops every other EXIF field (GPS position, camera, serial numbers), then
writes an XMP packet (Adobe XMP Specification Part 1, ISO 16684-1) with the fields of the
IPTC Photo Metadata Standard that picture desks read: creator (dc:creator), credit line
(photoshop:Credit), copyright notice (dc:rights), usage terms (xmpRights:UsageTerms),
headline and description, and the alt text (Iptc4xmpCore:AltTextAccessibility, IPTC 2021.1).
JPEG downloads also carry the same fields as IPTC IIM (IPTC-NAA IIM 4.2) in a Photoshop APP13
segment, for older tools that read only that.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from distributor.errors import ValidationFailed

MAX_IMAGE_BYTES = 40 * 1024 * 1024
MAX_DOCUMENT_BYTES = 40 * 1024 * 1024
# Pillow's own bomb guard warns at ~89 Mpx; we refuse well below that, with an error.
MAX_IMAGE_PIXELS = 60_000_000
MIN_IMAGE_WIDTH = 300
WEB_WIDTH = 1600
# Reduced JPEG sizes by name; "original" keeps the upload's resolution and format.
WIDTHS = {"web": WEB_WIDTH, "email": 600}
IMAGE_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"),
                 "WEBP": ("image/webp", ".webp")}  # fmt: skip
DOCUMENT_SIGNATURES = [(b"%PDF-", "application/pdf", ".pdf")]


@dataclass(frozen=True)
class CheckedUpload:
    is_image: bool
    content_type: str
    ext: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Credit:
    """What a download says about its rights (built by ``services.credit_for``)."""

    title: str
    caption: str
    alt_text: str
    creator: str
    credit_line: str
    copyright_notice: str
    usage_terms: str


def check_upload(data: bytes) -> CheckedUpload:
    """Accept a JPEG, PNG or WebP image (checked by Pillow) or a PDF document."""
    if not data:
        raise ValidationFailed("The file is empty.")
    for signature, content_type, ext in DOCUMENT_SIGNATURES:
        if data.startswith(signature):
            if len(data) > MAX_DOCUMENT_BYTES:
                raise ValidationFailed("The document is too large: 40 MB at most.")
            return CheckedUpload(is_image=False, content_type=content_type, ext=ext)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValidationFailed("The image is too large: 40 MB at most.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValidationFailed(
                        f"The image is {width} x {height} pixels; "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels at most."
                    )
                probe.verify()
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                upright = ImageOps.exif_transpose(opened)
                width, height = upright.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationFailed("The image has too many pixels to process safely.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(
            "That file is neither an image we can read (JPEG, PNG, WebP) nor a PDF."
        ) from exc
    if fmt not in IMAGE_FORMATS:
        raise ValidationFailed("Images must be JPEG, PNG or WebP.")
    if width < MIN_IMAGE_WIDTH:
        raise ValidationFailed(f"The image is too small: at least {MIN_IMAGE_WIDTH} pixels wide.")
    content_type, ext = IMAGE_FORMATS[fmt]
    return CheckedUpload(True, content_type, ext, width, height)


def _alt(tag: str, value: str) -> str:
    return (
        f"<{tag}><rdf:Alt><rdf:li xml:lang={quoteattr('x-default')}>{escape(value)}</rdf:li>"
        f"</rdf:Alt></{tag}>"
    )


def xmp_packet(credit: Credit) -> bytes:
    """An XMP packet (ISO 16684-1) with the IPTC Core rights fields."""
    parts = []
    if credit.creator:
        parts.append(
            f"<dc:creator><rdf:Seq><rdf:li>{escape(credit.creator)}</rdf:li></rdf:Seq></dc:creator>"
        )
    if credit.title:
        parts.append(_alt("dc:title", credit.title))
        parts.append(f"<photoshop:Headline>{escape(credit.title)}</photoshop:Headline>")
    if credit.caption:
        parts.append(_alt("dc:description", credit.caption))
    if credit.copyright_notice:
        parts.append(_alt("dc:rights", credit.copyright_notice))
    if credit.usage_terms:
        parts.append(_alt("xmpRights:UsageTerms", credit.usage_terms))
    if credit.credit_line:
        parts.append(f"<photoshop:Credit>{escape(credit.credit_line)}</photoshop:Credit>")
    if credit.alt_text:
        parts.append(_alt("Iptc4xmpCore:AltTextAccessibility", credit.alt_text))
    parts.append("<xmpRights:Marked>True</xmpRights:Marked>")
    body = "\n   ".join(parts)
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"\n'
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"\n'
        '    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/">\n'
        f"   {body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def _iim_dataset(record: int, number: int, value: bytes) -> bytes:
    value = value[:32767]
    return struct.pack(">BBBH", 0x1C, record, number, len(value)) + value


def iim_block(credit: Credit) -> bytes:
    """IPTC IIM 4.2 datasets, UTF-8 (1:90 = ESC % G), as a Photoshop APP13 payload."""
    iim = _iim_dataset(1, 90, b"\x1b%G")
    # IIM's lengths (By-line and Credit 32 octets) are older than today's credits; readers
    # accept longer values, and a credit cut short would name the wrong people, so the short
    # fields are kept whole up to 256 octets.
    fields = [
        (5, credit.title[:256]),  # Object Name
        (80, credit.creator[:256]),  # By-line
        (110, credit.credit_line[:256]),  # Credit
        (116, credit.copyright_notice[:256]),  # Copyright Notice
        (120, credit.caption[:2000]),  # Caption/Abstract
        (40, credit.usage_terms[:256]),  # Special Instructions: the usage terms
    ]
    for number, text in fields:
        if text:
            iim += _iim_dataset(2, number, text.encode("utf-8"))
    if len(iim) % 2:
        iim += b"\x00"
    # Photoshop image resource 0x0404 (IPTC-NAA), empty Pascal name padded to even length.
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim))
    return b"Photoshop 3.0\x00" + resource + iim


def _insert_app13(jpeg: bytes, payload: bytes) -> bytes:
    """Put an APP13 segment after the JPEG's leading APPn segments (JFIF, XMP)."""
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    pos = 2  # after SOI
    while jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        pos += 2 + length
    return jpeg[:pos] + segment + jpeg[pos:]


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


# Widths of the pictures pages show (``srcset``), each as WebP and as JPEG for older browsers.
RENDITION_WIDTHS = (480, 960, 1600)
RENDITION_FORMATS = {"webp": "WEBP", "jpg": "JPEG"}


def render_rendition(
    original: bytes, width: int, ext: str, credit: Credit, *, max_width: int | None = None
) -> bytes:
    """A picture for pages: at most ``width`` wide, WebP or JPEG, credit in its XMP."""
    with Image.open(io.BytesIO(original)) as opened:
        opened.load()
        image = _flatten(ImageOps.exif_transpose(opened))
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    width = min(width, max_width or width)
    if clean.width > width:
        height = max(1, round(clean.height * width / clean.width))
        clean = clean.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if RENDITION_FORMATS[ext] == "WEBP":
        clean.save(out, "WEBP", quality=80, method=4, xmp=xmp_packet(credit))
    else:
        clean.save(out, "JPEG", quality=82, optimize=True, progressive=True, xmp=xmp_packet(credit))
    return out.getvalue()


def render_download(
    original: bytes, size: str, credit: Credit, *, max_width: int | None = None
) -> tuple[bytes, str, str]:
    """The image at a ``WIDTHS`` size (JPEG) or ``original`` resolution (its own format, at
    most ``max_width`` wide when the licence says so), with EXIF dropped and the credit
    written in; returns (bytes, content type, extension)."""
    with Image.open(io.BytesIO(original)) as opened:
        opened.load()
        fmt = opened.format or "JPEG"
        icc = opened.info.get("icc_profile")
        image = ImageOps.exif_transpose(opened)
    # A fresh image: nothing of the upload's metadata (EXIF, comments, text chunks) rides along.
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    reduced = size != "original"
    if reduced or fmt not in IMAGE_FORMATS:
        fmt = "JPEG"
        clean = _flatten(clean)
        width = min(WIDTHS.get(size, WEB_WIDTH), max_width or WEB_WIDTH)
        if clean.width > width:
            height = max(1, round(clean.height * width / clean.width))
            clean = clean.resize((width, height), Image.Resampling.LANCZOS)
    else:
        if fmt == "JPEG" and clean.mode not in ("RGB", "L", "CMYK"):
            clean = _flatten(clean)
        if max_width is not None and clean.width > max_width:
            height = max(1, round(clean.height * max_width / clean.width))
            clean = clean.resize((max_width, height), Image.Resampling.LANCZOS)
    packet = xmp_packet(credit)
    options: dict[str, object] = {"xmp": packet}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=85 if reduced else 95, optimize=True, progressive=True)
    elif fmt == "WEBP":
        options.update(quality=100, lossless=True)
    elif fmt == "PNG":
        # XMP Specification Part 3: an uncompressed iTXt chunk named "XML:com.adobe.xmp".
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8"), zip=False)
        options.update(optimize=True, pnginfo=info)
    out = io.BytesIO()
    clean.save(out, fmt, **options)
    data = out.getvalue()
    if fmt == "JPEG":
        data = _insert_app13(data, iim_block(credit))
    content_type, ext = IMAGE_FORMATS[fmt]
    return data, content_type, ext
