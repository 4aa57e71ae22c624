"""The media library's use cases: upload, describe, find, use in releases, expire.

Service functions take the session and their collaborators (storage, clock) and never commit.
Whether an asset may be shown or sent is decided here only (``is_available``), and the
newsroom, downloads, feeds and the pre-send checklist all ask it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from distributor.audience.models import Beat
from distributor.db import after_commit
from distributor.errors import NotFound, ValidationFailed
from distributor.media import images
from distributor.media.models import (
    RIGHTS_MACHINE,
    AssetKind,
    LicenceKind,
    MediaAsset,
    MediaAssetEvent,
    MediaPageSection,
    ReleaseMedia,
    RightsState,
)
from distributor.newsroom.services import public_release_filter
from distributor.releases.models import Release, ReleaseStatus
from distributor.storage import MediaStorage, delete_prefix

MAX_TAGS = 20


@dataclass(frozen=True)
class AssetInput:
    title: str
    caption: str = ""
    alt_text: str = ""
    creator: str = ""
    agency: str = ""
    copyright_holder: str = ""
    licence: LicenceKind = LicenceKind.OWN
    licence_version: str = ""
    licence_text: str = ""
    usage_notes: str = ""
    max_download_width: int | None = None
    rights_until: dt.datetime | None = None
    has_consent: bool = False
    tags: str = ""
    media_page: MediaPageSection = MediaPageSection.NONE
    beat_ids: list[int] = field(default_factory=list)


def _clean_tags(raw: str) -> str:
    tags: list[str] = []
    for part in raw.split(","):
        tag = " ".join(part.strip().lower().split())[:40]
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationFailed(f"{MAX_TAGS} tags at most.")
    return ",".join(tags)


def _validate(data: AssetInput, kind: AssetKind) -> None:
    if not data.title.strip():
        raise ValidationFailed("Give the asset a title.")
    if kind is AssetKind.IMAGE and not data.alt_text.strip():
        raise ValidationFailed("Describe the image for people who cannot see it (alt text).")
    if not (data.creator.strip() or data.agency.strip() or data.copyright_holder.strip()):
        raise ValidationFailed("Name the creator, agency or copyright holder for the credit.")
    if data.licence is LicenceKind.CREATIVE_COMMONS and not data.licence_version.strip():
        raise ValidationFailed("Name the Creative Commons licence and version, e.g. CC BY 4.0.")
    if data.licence is LicenceKind.LICENSED_UNTIL and data.rights_until is None:
        raise ValidationFailed("A licence for a period needs the date the rights end.")
    if data.max_download_width is not None and not 300 <= data.max_download_width <= 20000:
        raise ValidationFailed("The largest size allowed must be 300 to 20,000 pixels wide.")
    if data.licence is LicenceKind.OTHER and not data.licence_text.strip():
        raise ValidationFailed("Describe the licence.")


def _apply(session: Session, asset: MediaAsset, data: AssetInput) -> list[str]:
    """Copy the input onto the asset; return the names of the fields that changed."""
    values = {
        "title": data.title.strip()[:300],
        "caption": data.caption.strip(),
        "alt_text": data.alt_text.strip(),
        "creator": data.creator.strip()[:200],
        "agency": data.agency.strip()[:200],
        "copyright_holder": data.copyright_holder.strip()[:200],
        "licence": data.licence,
        "licence_version": data.licence_version.strip()[:60],
        "licence_text": data.licence_text.strip(),
        "usage_notes": data.usage_notes.strip(),
        "max_download_width": data.max_download_width,
        "rights_until": data.rights_until,
        "has_consent": data.has_consent,
        "tags": _clean_tags(data.tags),
        "media_page": data.media_page,
    }
    changed = [name for name, value in values.items() if getattr(asset, name, None) != value]
    for name, value in values.items():
        setattr(asset, name, value)
    beats = (
        list(session.scalars(select(Beat).where(Beat.id.in_(data.beat_ids))))
        if data.beat_ids
        else []
    )
    if {b.id for b in beats} != {b.id for b in (asset.beats or [])}:
        changed.append("beats")
    asset.beats = beats
    return changed


def record(
    asset: MediaAsset,
    action: str,
    detail: str,
    actor_id: int | None,
    now: dt.datetime,
) -> None:
    # Newest first, as the relationship loads them.
    asset.events.insert(0, MediaAssetEvent(action=action, detail=detail, actor_id=actor_id, at=now))


def move_rights(asset: MediaAsset, target: RightsState) -> None:
    RIGHTS_MACHINE.check(asset.rights_state, target)
    asset.rights_state = target


def is_available(asset: MediaAsset, now: dt.datetime) -> bool:
    """May this asset be shown, downloaded and sent now? (The sweep only makes it permanent.)"""
    return asset.rights_state is RightsState.ACTIVE and (
        asset.rights_until is None or asset.rights_until > now
    )


def original_key(asset: MediaAsset) -> str:
    return f"originals/{asset.key}{file_ext(asset)}"


# Files built from an original (downloads with the credit written in, page pictures) live
# under the asset's key and name its revision; press kits live under their release's id.
def derived_prefixes(asset_key: str) -> tuple[str, str]:
    return f"downloads/{asset_key}/", f"renditions/{asset_key}/"


def press_kit_prefix(release_id: int) -> str:
    return f"presskits/{release_id}/"


def forget_built_files(
    storage: MediaStorage,
    asset_key: str,
    release_ids: list[int],
    *,
    keep_revision: int | None,
) -> int:
    """Remove what was built from an asset (all of it, or all but one revision's files) and
    the press kits of the releases carrying it; they are built again on the next request."""
    current = f"r{keep_revision}-"
    gone = 0
    for prefix in derived_prefixes(asset_key):
        for key in list(storage.keys(prefix)):
            if keep_revision is not None and key.removeprefix(prefix).startswith(current):
                continue
            storage.delete(key)
            gone += 1
    for release_id in release_ids:
        gone += delete_prefix(storage, press_kit_prefix(release_id))
    return gone


def file_ext(asset: MediaAsset) -> str:
    for content_type, ext in images.IMAGE_FORMATS.values():
        if content_type == asset.content_type:
            return ext
    return ".pdf"


def upload_asset(
    session: Session,
    storage: MediaStorage,
    *,
    data: bytes,
    filename: str,
    details: AssetInput,
    owner_id: int | None,
    now: dt.datetime,
) -> MediaAsset:
    """Check an uploaded image or document, store it once and describe it in the library."""
    checked = images.check_upload(data)
    kind = AssetKind.IMAGE if checked.is_image else AssetKind.DOCUMENT
    _validate(details, kind)
    asset = MediaAsset(
        key=secrets.token_hex(12),
        kind=kind,
        filename=safe_filename(filename, checked.ext),
        content_type=checked.content_type,
        size=len(data),
        width=checked.width,
        height=checked.height,
        owner_id=owner_id,
        created_at=now,
        updated_at=now,
        rights_state=RightsState.ACTIVE,
        revision=1,
        events=[],
    )
    _apply(session, asset, details)
    if asset.rights_until is not None and asset.rights_until <= now:
        raise ValidationFailed("The rights of this file have already ended.")
    session.add(asset)
    record(asset, "uploaded", asset.filename, owner_id, now)
    session.flush()
    # Stored before the commit: a rolled-back upload leaves an orphan file, never a row
    # without its file.
    storage.put(original_key(asset), data, asset.content_type)
    return asset


def safe_filename(name: str, ext: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    cleaned = re.sub(r"[^\w .()-]+", "", stem).strip(" .")[:200] or "file"
    return f"{cleaned}{ext}"


def update_asset(
    session: Session,
    asset: MediaAsset,
    details: AssetInput,
    *,
    actor_id: int | None,
    now: dt.datetime,
    storage: MediaStorage | None = None,
) -> list[str]:
    """Change an asset's description and rights; renewing expired rights shows it again."""
    if asset.rights_state is RightsState.DELETED:
        raise ValidationFailed("This asset was deleted.")
    _validate(details, asset.kind)
    changed = _apply(session, asset, details)
    if not changed:
        return []
    asset.revision += 1  # downloads carry the new credit
    asset.updated_at = now
    record(
        asset,
        "edited",
        "Changed " + ", ".join(c.replace("_", " ") for c in changed),
        actor_id,
        now,
    )
    if asset.rights_state is RightsState.EXPIRED and (
        asset.rights_until is None or asset.rights_until > now
    ):
        move_rights(asset, RightsState.ACTIVE)
        record(asset, "renewed", "Rights renewed: shown and sendable again.", actor_id, now)
    session.flush()
    if storage is not None:
        # The old credit must not linger in cached files (nor in press kits).
        release_ids = [r.id for r, _ in where_used(session, asset.id)]
        key, revision = asset.key, asset.revision

        def forget_older() -> None:
            forget_built_files(storage, key, release_ids, keep_revision=revision)

        after_commit(session, forget_older)
    return changed


def delete_asset(
    session: Session,
    storage: MediaStorage,
    asset: MediaAsset,
    *,
    confirmed: bool,
    actor_id: int | None,
    now: dt.datetime,
) -> None:
    """Delete an asset's files everywhere (original, downloads, page pictures, press kits);
    the row stays, marked deleted, so its page keeps its history. An asset used in releases
    is only deleted once staff confirm (it then leaves their galleries), and never while a
    send carrying it is under way."""
    if asset.rights_state is RightsState.DELETED:
        raise ValidationFailed("This asset was deleted already.")
    used = where_used(session, asset.id)
    if used and not confirmed:
        raise ValidationFailed(
            f"“{asset.title}” is used in {len(used)} release(s): "
            + "; ".join(f"#{r.id} {r.title}" for r, _ in used)
            + ". Deleting it removes it from their galleries, newsroom pages and press kits, "
            "and links in mail already sent stop working. Confirm to delete it anyway."
        )
    busy = [r for r, _ in used if r.status is ReleaseStatus.SENDING]
    if busy:
        raise ValidationFailed(
            f"“{busy[0].title}” is being sent with this asset; delete it once the send is over."
        )
    for release, _ in used:
        remove_from_release(session, release, asset, actor_id=actor_id, now=now)
    move_rights(asset, RightsState.DELETED)
    asset.media_page = MediaPageSection.NONE
    asset.updated_at = now
    record(
        asset,
        "deleted",
        "Deleted; its files were removed from storage"
        + (f" and it left {len(used)} release(s)." if used else "."),
        actor_id,
        now,
    )
    session.flush()
    release_ids = [r.id for r, _ in used]
    key, original = asset.key, original_key(asset)

    def remove_files() -> None:
        forget_built_files(storage, key, release_ids, keep_revision=None)
        storage.delete(original)

    after_commit(session, remove_files)


def get_asset(session: Session, asset_id: int) -> MediaAsset:
    asset = session.get(MediaAsset, asset_id)
    if asset is None:
        raise NotFound("No such asset.")
    return asset


def asset_by_key(session: Session, key: str) -> MediaAsset | None:
    return session.scalar(select(MediaAsset).where(MediaAsset.key == key))


class RightsFilter(enum.StrEnum):
    ANY = ""
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    DELETED = "deleted"


@dataclass(frozen=True)
class AssetQuery:
    text: str = ""
    kind: str = ""
    licence: str = ""
    beat_id: int | None = None
    tag: str = ""
    rights: RightsFilter = RightsFilter.ANY
    consent: str = ""  # "yes", "no" or ""


def search_assets(
    session: Session, query: AssetQuery, *, now: dt.datetime, warn_days: int, limit: int = 200
) -> list[MediaAsset]:
    """The library filtered by words (title, caption, alt text, credit, tags) and fields."""
    stmt = select(MediaAsset)
    for word in re.findall(r"\w+", query.text.lower())[:8]:
        like = f"%{word}%"
        stmt = stmt.where(
            or_(
                *(
                    func.lower(column).like(like)
                    for column in (
                        MediaAsset.title,
                        MediaAsset.caption,
                        MediaAsset.alt_text,
                        MediaAsset.creator,
                        MediaAsset.agency,
                        MediaAsset.copyright_holder,
                        MediaAsset.usage_notes,
                        MediaAsset.tags,
                        MediaAsset.filename,
                    )
                )
            )
        )
    if query.kind in {k.value for k in AssetKind}:
        stmt = stmt.where(MediaAsset.kind == AssetKind(query.kind))
    if query.licence in {k.value for k in LicenceKind}:
        stmt = stmt.where(MediaAsset.licence == LicenceKind(query.licence))
    if query.beat_id:
        from distributor.media.models import media_asset_beats

        stmt = stmt.where(
            exists().where(
                media_asset_beats.c.asset_id == MediaAsset.id,
                media_asset_beats.c.beat_id == query.beat_id,
            )
        )
    tag = _clean_tags(query.tag)
    if tag:
        stmt = stmt.where(("," + MediaAsset.tags + ",").like(f"%,{tag.split(',')[0]},%"))
    available = (MediaAsset.rights_state == RightsState.ACTIVE) & (
        MediaAsset.rights_until.is_(None) | (MediaAsset.rights_until > now)
    )
    if query.rights is RightsFilter.DELETED:
        stmt = stmt.where(MediaAsset.rights_state == RightsState.DELETED)
    else:
        stmt = stmt.where(MediaAsset.rights_state != RightsState.DELETED)
    if query.rights is RightsFilter.ACTIVE:
        stmt = stmt.where(available)
    elif query.rights is RightsFilter.EXPIRED:
        stmt = stmt.where(~available)
    elif query.rights is RightsFilter.EXPIRING:
        stmt = stmt.where(available, MediaAsset.rights_until <= now + dt.timedelta(days=warn_days))
    if query.consent == "yes":
        stmt = stmt.where(MediaAsset.has_consent.is_(True))
    elif query.consent == "no":
        stmt = stmt.where(MediaAsset.has_consent.is_(False))
    return list(
        session.scalars(
            stmt.order_by(MediaAsset.created_at.desc(), MediaAsset.id.desc()).limit(limit)
        ).unique()
    )


def where_used(session: Session, asset_id: int) -> list[tuple[Release, ReleaseMedia]]:
    """The releases that carry this asset, newest first."""
    rows = session.execute(
        select(Release, ReleaseMedia)
        .join(ReleaseMedia, ReleaseMedia.release_id == Release.id)
        .where(ReleaseMedia.asset_id == asset_id)
        .order_by(Release.id.desc())
    )
    return [(r, m) for r, m in rows]


# -- releases' galleries --------------------------------------------------------------------


def release_media(session: Session, release_id: int) -> list[ReleaseMedia]:
    """A release's assets: the lead image first, then the rest in the staff's order."""
    return list(
        session.scalars(
            select(ReleaseMedia)
            .where(ReleaseMedia.release_id == release_id)
            .order_by(ReleaseMedia.is_lead.desc(), ReleaseMedia.position, ReleaseMedia.asset_id)
        )
    )


def visible_release_media(
    session: Session, release_id: int, now: dt.datetime
) -> list[ReleaseMedia]:
    """What the newsroom, feeds and mail may show: expired rights are left out."""
    return [m for m in release_media(session, release_id) if is_available(m.asset, now)]


def add_to_release(
    session: Session,
    release: Release,
    asset: MediaAsset,
    *,
    as_lead: bool,
    actor_id: int | None,
    now: dt.datetime,
) -> ReleaseMedia:
    """Put a library asset into a release (as its lead image, or at the end of the gallery)."""
    if not is_available(asset, now):
        raise ValidationFailed("The rights of this asset have ended: it cannot be used.")
    if as_lead and not asset.is_image:
        raise ValidationFailed("Only an image can be the lead image.")
    items = release_media(session, release.id)
    item = next((m for m in items if m.asset_id == asset.id), None)
    if item is None:
        item = ReleaseMedia(
            release_id=release.id,
            asset_id=asset.id,
            position=max((m.position for m in items), default=0) + 1,
        )
        item.asset = asset
        session.add(item)
        record(
            asset,
            "used",
            f"Added to release #{release.id}: {release.title}",
            actor_id,
            now,
        )
    if as_lead:
        for other in items:
            other.is_lead = False
        item.is_lead = True
    session.flush()
    return item


def remove_from_release(
    session: Session, release: Release, asset: MediaAsset, *, actor_id: int | None, now: dt.datetime
) -> None:
    session.execute(
        delete(ReleaseMedia).where(
            ReleaseMedia.release_id == release.id, ReleaseMedia.asset_id == asset.id
        )
    )
    record(
        asset,
        "removed",
        f"Removed from release #{release.id}: {release.title}",
        actor_id,
        now,
    )
    session.flush()


def move_in_release(session: Session, release: Release, asset_id: int, offset: int) -> None:
    """Move a gallery item up (-1) or down (+1) in the staff's order."""
    items = [m for m in release_media(session, release.id) if not m.is_lead]
    index = next((i for i, m in enumerate(items) if m.asset_id == asset_id), None)
    if index is None:
        raise NotFound("That asset is not in the gallery.")
    target = index + offset
    if 0 <= target < len(items):
        items[index], items[target] = items[target], items[index]
    for position, item in enumerate(items, start=1):
        item.position = position
    session.flush()


def is_public_asset(session: Session, asset: MediaAsset, now: dt.datetime) -> bool:
    """On the media page or in a public release, with rights in force: anyone may have it."""
    if not is_available(asset, now):
        return False
    if asset.media_page is not MediaPageSection.NONE:
        return True
    return bool(
        session.scalar(
            select(
                exists()
                .where(ReleaseMedia.asset_id == asset.id, ReleaseMedia.release_id == Release.id)
                .where(public_release_filter(now))
            )
        )
    )


def media_page(
    session: Session, now: dt.datetime
) -> list[tuple[MediaPageSection, list[MediaAsset]]]:
    """The public media page: its sections in order, each with its assets in force."""
    assets = session.scalars(
        select(MediaAsset)
        .where(MediaAsset.media_page != MediaPageSection.NONE)
        .order_by(MediaAsset.title, MediaAsset.id)
    ).unique()
    by_section: dict[MediaPageSection, list[MediaAsset]] = {}
    for asset in assets:
        if is_available(asset, now):
            by_section.setdefault(asset.media_page, []).append(asset)
    return [(s, by_section[s]) for s in MediaPageSection if s in by_section]
