"""Stored photos: validated on upload, re-encoded to two JPEG widths, kept in the media storage.

A release's lead photo and a spokesperson's portrait are the same kind of file, so both go
through here. Every file goes through ``distributor.storage`` (a local folder under
``DATA_DIR`` by default, an S3-compatible store with ``MEDIA_STORAGE_URL``), so several web
machines serve the same photos. Photos are re-encoded (never served as uploaded: that drops
EXIF location data and anything smuggled inside the file) to two JPEG widths: ``web`` for the
newsroom and ``email`` for mail. Their key is random, so a photo URL can go into an embargoed
mail before publication.
"""

from __future__ import annotations

import io
import secrets
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from distributor.errors import ValidationFailed
from distributor.storage import MediaStorage

MAX_PHOTO_BYTES = 15 * 1024 * 1024
# Pillow's own bomb guard is ~89 Mpx with a warning; we refuse well below that, with an error.
MAX_PHOTO_PIXELS = 40_000_000
MIN_PHOTO_WIDTH = 300
PHOTO_WIDTHS = {"web": 1200, "email": 600}
PHOTO_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}


def photo_key(key: str, size: str) -> str:
    """The storage key of a photo (lead photos, spokespeople) at one of its widths."""
    return f"photos/{key}-{PHOTO_WIDTHS[size]}.jpg"


def read_limited(stream: IO[bytes], limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationFailed(f"The {what} is too large: {limit // (1024 * 1024)} MB at most.")
    if not data:
        raise ValidationFailed(f"The {what} is empty.")
    return data


@dataclass(frozen=True)
class ProcessedPhoto:
    key: str
    width: int
    height: int


def process_photo(
    stream: IO[bytes], storage: MediaStorage, *, max_bytes: int = MAX_PHOTO_BYTES
) -> ProcessedPhoto:
    """Validate an uploaded image and store it re-encoded at web and email widths."""
    data = read_limited(stream, max_bytes, "photo")
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) between its two bomb limits: make that an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if width * height > MAX_PHOTO_PIXELS:
                    raise ValidationFailed(
                        f"The photo is {width} x {height} pixels; "
                        f"{MAX_PHOTO_PIXELS // 1_000_000} megapixels at most."
                    )
                probe.verify()
            if fmt not in PHOTO_FORMATS:
                raise ValidationFailed("The photo must be a JPEG, PNG, WebP or GIF image.")
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                rgb = _flatten(ImageOps.exif_transpose(opened))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationFailed("The photo has too many pixels to process safely.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed("That file is not an image we can read (JPEG, PNG, WebP).") from exc
    if rgb.width < MIN_PHOTO_WIDTH:
        raise ValidationFailed(f"The photo is too small: at least {MIN_PHOTO_WIDTH} pixels wide.")
    key = secrets.token_hex(12)
    for size, target in PHOTO_WIDTHS.items():
        copy = rgb.copy()
        if copy.width > target:
            copy = copy.resize(
                (target, max(1, round(copy.height * target / copy.width))), Image.Resampling.LANCZOS
            )
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=84, optimize=True, progressive=True)
        storage.put(photo_key(key, size), out.getvalue(), "image/jpeg")
    return ProcessedPhoto(key=key, width=rgb.width, height=rgb.height)


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def delete_photo_files(storage: MediaStorage, key: str) -> None:
    for size in PHOTO_WIDTHS:
        storage.delete(photo_key(key, size))
