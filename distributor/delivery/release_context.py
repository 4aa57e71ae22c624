"""What the release template shows: public URLs, labels and the Jinja context."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from markupsafe import Markup

from distributor.organisation.models import Organisation
from distributor.releases.models import Attachment, Release
from distributor.settings import Settings


def public_release_url(settings: Settings, release: Release) -> str:
    return f"{settings.public_base_url}/releases/{release.slug}"


def photo_email_url(settings: Settings, release: Release) -> str | None:
    """The 600 px email rendition of the lead photo (``newsroom.photo``)."""
    if not release.photo_key:
        return None
    from distributor.releases.media import PHOTO_WIDTHS

    return (
        f"{settings.public_base_url}/media/photos/{release.photo_key}-{PHOTO_WIDTHS['email']}.jpg"
    )


def attachment_url(settings: Settings, release: Release, attachment: Attachment) -> str:
    """``newsroom.attachment``, the public URL. Under embargo the mail links each recipient's
    personal room instead (``room`` in ``release_context``); the staff preview token never
    goes into a mail."""
    name = quote(attachment.filename)
    return f"{settings.public_base_url}/releases/{release.slug}/attachments/{attachment.id}/{name}"


@dataclass(frozen=True)
class LibraryItem:
    """A media library asset the mail carries (built by ``rendering`` from distributor/media)."""

    key: str
    title: str
    caption: str
    alt: str
    credit: str
    is_image: bool
    is_lead: bool


def library_url(settings: Settings, key: str, size: str) -> str:
    """``media.download``: the file with its credit written in, while its rights last."""
    return f"{settings.public_base_url}/media/library/{key}/{size}"


def size_label(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def embargo_label(when: dt.datetime, tz_name: str) -> str:
    """``25 Nov 2026 09:00 UTC (10:00 CET)``; the local date is repeated when it differs."""
    utc = when.astimezone(dt.UTC)
    local = when.astimezone(_zone(tz_name))
    local_part = local.strftime("%H:%M %Z")
    if local.date() != utc.date():
        local_part = local.strftime("%d %b %Y %H:%M %Z").lstrip("0")
    return f"{utc.strftime('%d %b %Y %H:%M').lstrip('0')} UTC ({local_part})"


def embargo_subject_label(when: dt.datetime, tz_name: str) -> str:
    """``3 Dec 09:00 GMT``: short enough that the subject still fits an inbox line.

    The body keeps the full UTC and local wording; the subject names the organisation's
    local time only (the long form alone took 40 of the ~78 characters inboxes show).
    """
    local = when.astimezone(_zone(tz_name))
    return f"{local.day} {local.strftime('%b %H:%M %Z')}"


def _zone(name: str) -> dt.tzinfo:
    return ZoneInfo(name)


def release_context(
    release: Release,
    org: Organisation,
    settings: Settings,
    *,
    recipient: dict[str, Any],
    link: Callable[[str], str],
    pixel: str,
    body_html: str,
    room: dict[str, Any] | None = None,
    library: Sequence[LibraryItem] = (),
) -> dict[str, Any]:
    """Everything ``templates/email/release`` needs; ``link`` rewrites a URL for tracking.

    With ``room`` (an embargoed release: its ``url`` is each recipient's personal room link)
    the photo and downloads are reached through the room, never through public URLs that do
    not work yet, and the "read online" button opens the room.
    """
    photo_url = None if room is not None else photo_email_url(settings, release)
    photo: dict[str, Any] | None = (
        {
            "url": photo_url,
            "alt": release.photo_alt or release.title,
            "credit": release.credit_line,
            "caption": release.photo_caption,
        }
        if photo_url
        else None
    )
    # The library's lead image stands in for a release without an uploaded lead photo; the
    # rest are links (journalists want pictures as links, not as heavy attachments).
    lead = next((i for i in library if i.is_lead), None)
    if photo is None and lead is not None and room is None:
        photo = {
            "url": library_url(settings, lead.key, "email"),
            "alt": lead.alt or lead.title,
            "credit": lead.credit,
            "caption": lead.caption,
        }

    def file_url(a: Attachment) -> str:
        if room is not None:
            return f"{room['url']}/attachments/{a.id}/{quote(a.filename)}"
        return link(attachment_url(settings, release, a))

    return {
        "org": org,
        "logo_url": f"{settings.public_base_url}/media/logos/{org.logo_key}.png"
        if org.logo_key
        else "",
        "release": {
            "title": " ".join(release.title.split()),
            "kind": release.kind.name if release.kind else "Press release",
            "summary": release.summary,
            "body_html": Markup(body_html),  # noqa: S704 - nh3-sanitised in compile_release
            "published": (release.published_at or release.created_at or dt.datetime.now(dt.UTC))
            .astimezone(_zone(org.timezone))
            .strftime("%d %B %Y")
            .lstrip("0"),
            "url": room["url"] if room is not None else link(public_release_url(settings, release)),
            "has_photo": bool(release.photo_key),
            "photo": photo,
            "gallery": [
                {
                    "title": i.title,
                    "credit": i.credit,
                    # Under embargo through the recipient's room, like the attachments.
                    "url": f"{room['url']}/library/{i.key}/original"
                    if room is not None
                    else link(library_url(settings, i.key, "original")),
                    "kind": "Image" if i.is_image else "Document",
                }
                # The lead too: its mail picture is small, the link gives the original.
                for i in library
                if not (room is not None and room["requires_terms"])
            ],
            "contacts": [
                {"name": c.name, "title": c.title, "email": c.email, "phone": c.phone}
                for c in release.contacts
            ],
            "attachments": [
                {
                    "filename": a.filename,
                    "url": file_url(a),
                    "size": size_label(a.size),
                }
                for a in release.attachments
            ],
        },
        "embargo": embargo_label(release.embargo_until, org.timezone)
        if release.embargo_until
        else None,
        "room": room,
        "embargo_subject": embargo_subject_label(release.embargo_until, org.timezone)
        if release.embargo_until
        else None,
        "recipient": recipient,
        "pixel": Markup(pixel),  # noqa: S704 - a marker or a tag we build
    }
