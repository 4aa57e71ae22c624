"""What a download says about its rights, and the files journalists download.

The credit line, copyright notice and usage terms are decided here once, for the newsroom
page, the mail and the metadata written into each file (see ``images``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.errors import NotFound
from distributor.media import images
from distributor.media.models import LicenceKind, MediaAsset
from distributor.media.services import file_ext, original_key, press_kit_prefix, safe_filename
from distributor.releases.models import Release
from distributor.storage import MediaFileMissing, MediaStorage, delete_prefix

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
            storage.read(original_key(asset)),
            size,
            credit_for(asset),
            max_width=asset.max_download_width,
        )
        storage.put(key, data, content_type)
    suffix = f"-{size}" if reduced else ""
    return Download(key, content_type, f"{stem}{suffix}{ext}")


def prepare_rendition(storage: MediaStorage, asset: MediaAsset, width: int, ext: str) -> Download:
    """A page picture (``srcset``), built once per metadata revision and cached."""
    if not asset.is_image or width not in images.RENDITION_WIDTHS:
        raise NotFound("No such picture.")
    if ext not in images.RENDITION_FORMATS:
        raise NotFound("No such picture.")
    key = f"renditions/{asset.key}/r{asset.revision}-{width}.{ext}"
    content_type = "image/webp" if ext == "webp" else "image/jpeg"
    if not storage.exists(key):
        data = images.render_rendition(
            storage.read(original_key(asset)),
            width,
            ext,
            credit_for(asset),
            max_width=asset.max_download_width,
        )
        storage.put(key, data, content_type)
    return Download(key, content_type, f"{asset.key}-{width}.{ext}")


# -- the press kit -----------------------------------------------------------------------------

PRESS_KIT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<p>{kind} · {org}</p>
<h1>{title}</h1>
<p><strong>{summary}</strong></p>
{body}
<h2>Pictures and documents</h2>
<ul>
{items}
</ul>
<p>Online: <a href="{url}">{url}</a></p>
</body></html>
"""


def _fingerprint(release: Release, assets: Sequence[MediaAsset]) -> str:
    """Changes whenever the text or any carried asset (or its credit) changes."""
    parts = [str(release.id), release.updated_at.isoformat(), release.title]
    parts += [f"{a.key}:{a.revision}" for a in assets]
    parts += [release.photo_key or "", release.photo_credit]
    parts += [a.stored_name for a in release.attachments]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def press_kit_key(release: Release, assets: Sequence[MediaAsset]) -> str:
    return f"{press_kit_prefix(release.id)}{_fingerprint(release, assets)}.zip"


def press_kit(
    storage: MediaStorage,
    release: Release,
    assets: Sequence[MediaAsset],
    *,
    org_name: str,
    release_url: str,
) -> Download:
    """A zip of the release as text and HTML, its pictures and documents (originals, credit
    written in) and CREDITS.txt; built once per version of all of them and cached."""
    key = press_kit_key(release, assets)
    filename = f"{release.slug}-press-kit.zip"
    if storage.exists(key):
        return Download(key, "application/zip", filename)
    used: set[str] = set()
    files: list[tuple[str, bytes]] = []
    credits = [f"Credits and usage terms: {release.title}", f"{release_url}", ""]
    items_html = []
    for asset in assets:
        prepared = prepare_download(storage, asset, "original")
        folder = "images" if asset.is_image else "documents"
        name = f"{folder}/{prepared.filename}"
        stem, dot, ext = name.rpartition(".")
        n = 2
        while name in used:
            name = f"{stem}-{n}{dot}{ext}"
            n += 1
        used.add(name)
        files.append((name, storage.read(prepared.key)))
        credits += [
            name,
            f"  Title: {asset.title}",
            *([f"  Caption: {asset.caption}"] if asset.caption else []),
            f"  Credit: {credit_line(asset)}",
            f"  Copyright: {copyright_notice(asset)}",
            f"  Usage terms: {usage_terms(asset)}",
            "",
        ]
        items_html.append(
            f"<li>{escape(name)}: {escape(asset.title)} ({escape(credit_line(asset))}). "
            f"{escape(usage_terms(asset))}</li>"
        )
    # The release's own lead photo and attachments (uploaded with it, not from the library);
    # one whose file is missing is left out rather than failing the whole kit.
    from distributor.releases.media import attachment_key, photo_key

    if release.photo_key:
        name = f"images/{release.slug}-lead-photo.jpg"
        try:
            files.append((name, storage.read(photo_key(release.photo_key, "web"))))
        except MediaFileMissing:
            pass
        else:
            credits += [
                name,
                f"  Caption: {release.photo_caption or release.photo_alt}",
                *([f"  Credit: {release.credit_line}"] if release.photo_credit else []),
                "",
            ]
            items_html.append(f"<li>{escape(name)}: {escape(release.credit_line)}</li>")
    for attachment in release.attachments:
        name = f"documents/{attachment.filename}"
        if name in used:
            name = f"documents/{attachment.id}-{attachment.filename}"
        try:
            files.append((name, storage.read(attachment_key(attachment.stored_name))))
        except MediaFileMissing:
            continue
        used.add(name)
        items_html.append(f"<li>{escape(name)}</li>")
    text = "\n\n".join(
        p for p in (release.title, release.summary, release.body_markdown.strip()) if p
    )
    html = PRESS_KIT_HTML.format(
        title=escape(release.title),
        kind=escape(release.kind.name if release.kind else "Press release"),
        org=escape(org_name),
        summary=escape(release.summary),
        body=release.body_html,  # sanitised with nh3 when the release was saved
        items="\n".join(items_html),
        url=escape(release_url),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{release.slug}.txt", text + f"\n\n{release_url}\n")
        archive.writestr(f"{release.slug}.html", html)
        archive.writestr("CREDITS.txt", "\n".join(credits))
        for name, data in files:
            # Pictures are compressed already; storing them saves the server's time.
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    storage.put(key, buffer.getvalue(), "application/zip")
    # Older kits of this release carry an older text or credit: they go.
    delete_prefix(storage, press_kit_prefix(release.id), keep=key)
    return Download(key, "application/zip", filename)


# -- cleaning up -------------------------------------------------------------------------------


def sweep_built_files(session: Session, storage: MediaStorage, now: dt.datetime) -> int:
    """The daily clean-up of built files: downloads and page pictures of assets that may no
    longer be shown (rights ended, deleted) or of an older revision (an older credit), and
    press kits that are not the current one of a public release. Returns how many went."""
    from distributor.media.services import is_available, visible_release_media
    from distributor.newsroom.services import public_release_filter

    current = {
        a.key: f"r{a.revision}-" if is_available(a, now) else None
        for a in session.scalars(select(MediaAsset)).unique()
    }
    gone = 0
    for top in ("downloads/", "renditions/"):
        for key in list(storage.keys(top)):
            parts = key.split("/")
            keep = current.get(parts[1]) if len(parts) == 3 else None
            if keep is None or not parts[2].startswith(keep):
                storage.delete(key)
                gone += 1
    kits: dict[str, list[str]] = {}
    for key in storage.keys("presskits/"):
        kits.setdefault(key.split("/")[1], []).append(key)
    for release_id, keys in kits.items():
        release = (
            session.scalar(
                select(Release)
                .where(Release.id == int(release_id))
                .where(public_release_filter(now))
            )
            if release_id.isdigit()
            else None
        )
        keep_key = ""
        if release is not None:
            assets = [m.asset for m in visible_release_media(session, release.id, now)]
            keep_key = press_kit_key(release, assets)
        for key in keys:
            if key != keep_key:
                storage.delete(key)
                gone += 1
    return gone
