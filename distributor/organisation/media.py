"""The organisation's logo: checked with Pillow, stored as PNG (transparency kept)."""

from __future__ import annotations

import io
import secrets
import warnings
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from distributor.errors import ValidationFailed
from distributor.storage import MediaStorage

MAX_LOGO_BYTES = 5 * 1024 * 1024
MAX_LOGO_PIXELS = 25_000_000
MIN_LOGO_HEIGHT = 48
LOGO_HEIGHT = 192  # drawn at 48-64 px; twice that (and more) stays sharp on dense screens
LOGO_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}


def logo_key(key: str) -> str:
    """The storage key of a logo."""
    return f"logos/{key}.png"


def process_logo(stream: IO[bytes], storage: MediaStorage) -> str:
    """Validate an uploaded logo and store it at a fixed height; return its random key."""
    data = stream.read(MAX_LOGO_BYTES + 1)
    if len(data) > MAX_LOGO_BYTES:
        raise ValidationFailed("The logo is too large: 5 MB at most.")
    if not data:
        raise ValidationFailed("The logo file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if width * height > MAX_LOGO_PIXELS:
                    raise ValidationFailed("The logo has too many pixels (25 megapixels at most).")
                probe.verify()
            if fmt not in LOGO_FORMATS:
                raise ValidationFailed("The logo must be a PNG, JPEG, WebP or GIF image.")
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened).convert("RGBA")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationFailed("The logo has too many pixels to process safely.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed("That file is not an image we can read (PNG, JPEG, WebP).") from exc
    if image.height < MIN_LOGO_HEIGHT:
        raise ValidationFailed(f"The logo is too small: at least {MIN_LOGO_HEIGHT} pixels high.")
    if image.height > LOGO_HEIGHT:
        width = max(1, round(image.width * LOGO_HEIGHT / image.height))
        image = image.resize((width, LOGO_HEIGHT), Image.Resampling.LANCZOS)
    key = secrets.token_hex(12)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)  # re-encoded: no metadata survives
    storage.put(logo_key(key), out.getvalue(), "image/png")
    return key


def delete_logo(storage: MediaStorage, key: str) -> None:
    storage.delete(logo_key(key))
