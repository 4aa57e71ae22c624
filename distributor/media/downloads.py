"""What a download says about its rights, and the files journalists download.

The credit line, copyright notice and usage terms are decided here once, for the newsroom
page, the mail and the metadata written into each file (see ``images``).
"""

from __future__ import annotations

from dataclasses import dataclass

from distributor.errors import NotFound
from distributor.media import images
from distributor.media.models import LicenceKind, MediaAsset
from distributor.media.services import file_ext, original_key, safe_filename
from distributor.media.storage import MediaStorage

# -- what a download says ----------------------------------------------------------------------


def credit_line(asset: MediaAsset) -> str:
    """The credit a journalist prints, e.g. "Photo: Jane Doe/Agency" (IPTC Credit Line)."""
    who = "/".join(p for p in (asset.creator, asset.agency) if p) or asset.copyright_holder
    return f"Photo: {who}" if asset.is_image else who


def copyright_notice(asset: MediaAsset) -> str:
    holder = asset.copyright_holder or asset.agency or asset.creator
    return f"© {asset.created_at.year} {holder}"


def usage_terms(asset: MediaAsset) -> str:
    """The licence in words (IPTC Rights Usage Terms)."""
    if asset.licence is LicenceKind.OWN:
        terms = f"Free to use with the credit “{credit_line(asset)}”."
    elif asset.licence is LicenceKind.EDITORIAL:
        terms = f"Editorial use only, with the credit “{credit_line(asset)}”."
    elif asset.licence is LicenceKind.CREATIVE_COMMONS:
        terms = f"Licensed under {asset.licence_version}; credit “{credit_line(asset)}”."
    elif asset.licence is LicenceKind.LICENSED_UNTIL:
        terms = f"Licensed for use with the credit “{credit_line(asset)}”."
    else:
        terms = asset.licence_text
    if asset.rights_until is not None:
        terms += f" Not to be used after {asset.rights_until.strftime('%d %B %Y')}."
    if asset.usage_notes:
        terms += " " + asset.usage_notes
    return terms.strip()


def credit_for(asset: MediaAsset) -> images.Credit:
    return images.Credit(
        title=asset.title,
        caption=asset.caption,
        alt_text=asset.alt_text,
        creator=asset.creator or asset.agency,
        credit_line=credit_line(asset),
        copyright_notice=copyright_notice(asset),
        usage_terms=usage_terms(asset),
    )


DOWNLOAD_SIZES = ("web", "email", "original")


@dataclass(frozen=True)
class Download:
    key: str
    content_type: str
    filename: str


def prepare_download(storage: MediaStorage, asset: MediaAsset, size: str) -> Download:
    """The stored file to send: images are built once per metadata revision and cached."""
    stem = safe_filename(asset.filename, "").rstrip(".") or "file"
    if not asset.is_image:
        return Download(original_key(asset), asset.content_type, asset.filename)
    if size not in DOWNLOAD_SIZES:
        raise NotFound("No such size.")
    reduced = size != "original"
    ext = ".jpg" if reduced else file_ext(asset)
    key = f"downloads/{asset.key}/r{asset.revision}-{size}{ext}"
    content_type = "image/jpeg" if reduced else asset.content_type
    if not storage.exists(key):
        data, content_type, ext = images.render_download(
            storage.read(original_key(asset)), size, credit_for(asset)
        )
        storage.put(key, data, content_type)
    suffix = f"-{size}" if reduced else ""
    return Download(key, content_type, f"{stem}{suffix}{ext}")
