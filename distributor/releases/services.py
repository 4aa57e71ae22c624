"""Release use cases: compose, edit, version, kinds and press contacts.

The workflow (state machine, ``transition``, ``is_publicly_visible``, the embargo sweep) lives
in ``distributor.releases.workflow`` and is re-exported here, so callers import one module.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt
from sqlalchemy import func, or_, select, true
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience.models import Beat, MediaList
from distributor.db import utcnow
from distributor.errors import Conflict, Forbidden, NotFound, ValidationFailed
from distributor.releases.models import (
    PressContact,
    Release,
    ReleaseKind,
    ReleaseStatus,
    ReleaseVersion,
)
from distributor.releases.workflow import (
    ACTION_LABELS,
    RELEASE_WORKFLOW,
    TRANSITION_ROLES,
    is_publicly_visible,
    may_transition,
    publish_due_embargoes,
    set_embargo,
    transition,
)

__all__ = [
    "ACTION_LABELS",
    "RELEASE_WORKFLOW",
    "TRANSITION_ROLES",
    "ReleaseInput",
    "can_edit",
    "create_release",
    "is_publicly_visible",
    "may_transition",
    "publish_due_embargoes",
    "render_markdown",
    "set_embargo",
    "transition",
    "update_release",
]

# -- Markdown -> sanitised HTML -------------------------------------------------------------------

# Raw HTML is allowed through the parser; the nh3 allowlist below decides what survives.
_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": True})
_markdown.enable(["table", "strikethrough", "replacements", "smartquotes"])

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"style"},
    "th": {"style"},
    "ol": {"start"},
}
ALLOWED_STYLES = {"text-align"}


def render_markdown(source: str) -> str:
    """Render a release body written in Markdown to HTML safe to show anywhere (nh3 allowlist)."""
    # A release body's own headings sit below the page's <h1> (the title).
    html = _markdown.render(source)
    html = re.sub(r"<(/?)h1>", r"<\1h2>", html)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=ALLOWED_STYLES,
        strip_comments=True,
    )


# -- slugs -------------------------------------------------------------------------------------


def slugify(text: str, max_length: int = 80) -> str:
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", normalized.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "release"


def _unique_slug(session: Session, title: str, *, exclude_id: int | None = None) -> str:
    base = slugify(title)
    taken = set(
        session.scalars(
            select(Release.slug).where(
                (Release.slug == base) | Release.slug.like(f"{base}-%"),
                Release.id != (exclude_id or 0),
            )
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


# -- compose and edit --------------------------------------------------------------------------


@dataclass
class ReleaseInput:
    """What the compose form submits, already parsed (datetimes aware, ids as ints)."""

    kind_id: int
    title: str
    summary: str = ""
    body_markdown: str = ""
    beat_ids: Sequence[int] = field(default_factory=list)
    contact_ids: Sequence[int] = field(default_factory=list)
    campaign_tags: str = ""
    photo_caption: str = ""
    photo_credit: str = ""
    photo_alt: str = ""
    embargo_until: dt.datetime | None = None
    # Media lists whose members receive it besides the beats' subscribers; None: unchanged.
    media_list_ids: Sequence[int] | None = None


def can_edit(user: User, release: Release) -> bool:
    """Press officers edit drafts, and their own release while it is in review; editors and
    admins edit anything not being sent.

    An author who spots a typo after submitting fixes it in place: the release stays in
    review (taking it back to draft would drop it from the editors' queue), and the change is
    a new version the reviewing editor can compare with what was submitted.
    """
    if release.status is ReleaseStatus.SENDING:
        return False
    if user.role in (Role.EDITOR, Role.ADMIN):
        return True
    if release.status is ReleaseStatus.IN_REVIEW:
        return release.created_by_id == user.id
    return release.status is ReleaseStatus.DRAFT


def _apply(session: Session, release: Release, data: ReleaseInput) -> None:
    title = data.title.strip()
    if not title:
        raise ValidationFailed("A release needs a title.")
    if len(title) > 300:
        raise ValidationFailed("The title is too long (300 characters at most).")
    kind = session.get(ReleaseKind, data.kind_id)
    if kind is None:
        raise ValidationFailed("Choose a kind of release.")
    release.kind = kind
    release.title = title
    release.summary = data.summary.strip()
    release.body_markdown = data.body_markdown.replace("\r\n", "\n")
    release.body_html = render_markdown(release.body_markdown)
    release.campaign_tags = ", ".join(
        t.strip() for t in data.campaign_tags.split(",") if t.strip()
    )[:500]
    release.photo_caption = data.photo_caption.strip()
    release.photo_credit = data.photo_credit.strip()[:300]
    release.photo_alt = data.photo_alt.strip()[:500]
    beats = session.scalars(select(Beat).where(Beat.id.in_(list(data.beat_ids)))).all()
    if len(beats) != len(set(data.beat_ids)):
        raise ValidationFailed("One of the chosen beats does not exist.")
    release.beats = sorted(beats, key=lambda b: b.name)
    if data.media_list_ids is not None:
        set_media_lists(session, release, data.media_list_ids)
    by_id = {
        c.id: c
        for c in session.scalars(
            select(PressContact).where(PressContact.id.in_(list(data.contact_ids)))
        )
    }
    if len(by_id) != len(set(data.contact_ids)):
        raise ValidationFailed("One of the chosen press contacts does not exist.")
    release.contacts = [by_id[i] for i in dict.fromkeys(data.contact_ids)]


def set_media_lists(session: Session, release: Release, media_list_ids: Sequence[int]) -> None:
    """Choose the media lists a send of this release goes to (with the beats' subscribers)."""
    ids = list(dict.fromkeys(media_list_ids))
    lists = session.scalars(select(MediaList).where(MediaList.id.in_(ids))).all()
    if len(lists) != len(ids):
        raise ValidationFailed("One of the chosen media lists does not exist.")
    release.media_lists = sorted(lists, key=lambda m: m.name)


def choose_media_lists(
    session: Session, release: Release, *, editor: User, media_list_ids: Sequence[int]
) -> None:
    """Staff choose, on the send page, the media lists a send goes to."""
    if not can_edit(editor, release):
        raise Forbidden(f"This release is {release.status.label.lower()} and cannot be edited.")
    set_media_lists(session, release, media_list_ids)
    session.flush()


def create_release(
    session: Session, *, author: User | None, data: ReleaseInput, now: dt.datetime | None = None
) -> Release:
    """Create a draft release (version 1) from the compose form."""
    now = now or utcnow()
    release = Release(
        status=ReleaseStatus.DRAFT,
        preview_token=secrets.token_urlsafe(32),
        created_by_id=author.id if author else None,
        owner_id=author.id if author else None,
        created_at=now,
        updated_at=now,
    )
    _apply(session, release, data)
    release.slug = _unique_slug(session, release.title)
    set_embargo(release, data.embargo_until, now)
    session.add(release)
    session.flush()
    _record_version(session, release, author, now)
    return release


def update_release(
    session: Session,
    release: Release,
    *,
    editor: User,
    data: ReleaseInput,
    now: dt.datetime | None = None,
) -> Release:
    """Save an edit; a changed title, summary or body becomes a new version."""
    if not can_edit(editor, release):
        raise Forbidden(f"This release is {release.status.label.lower()} and cannot be edited.")
    now = now or utcnow()
    before = (release.title, release.summary, release.body_markdown)
    _apply(session, release, data)
    set_embargo(release, data.embargo_until, now)
    release.updated_at = now
    session.flush()
    if (release.title, release.summary, release.body_markdown) != before:
        _record_version(session, release, editor, now)
    return release


def _record_version(
    session: Session, release: Release, by: User | None, now: dt.datetime
) -> ReleaseVersion:
    number = (
        session.scalar(
            select(func.max(ReleaseVersion.number)).where(ReleaseVersion.release_id == release.id)
        )
        or 0
    ) + 1
    version = ReleaseVersion(
        release_id=release.id,
        number=number,
        title=release.title,
        summary=release.summary,
        body_markdown=release.body_markdown,
        by_id=by.id if by else None,
        created_at=now,
    )
    session.add(version)
    session.flush()
    return version


def versions(session: Session, release: Release) -> list[ReleaseVersion]:
    return list(
        session.scalars(
            select(ReleaseVersion)
            .where(ReleaseVersion.release_id == release.id)
            .order_by(ReleaseVersion.number.desc())
        )
    )


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same", "added", "removed", "gap"
    text: str


def compare_versions(old: ReleaseVersion, new: ReleaseVersion) -> list[DiffLine]:
    """A line diff of two versions (title, summary and body), with context, for the diff view."""

    def lines(v: ReleaseVersion) -> list[str]:
        return [f"# {v.title}", "", *v.summary.splitlines(), "", *v.body_markdown.splitlines()]

    out: list[DiffLine] = []
    diff = difflib.unified_diff(lines(old), lines(new), lineterm="", n=3)
    for line in diff:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            out.append(DiffLine("gap", "…"))
        elif line.startswith("+"):
            out.append(DiffLine("added", line[1:]))
        elif line.startswith("-"):
            out.append(DiffLine("removed", line[1:]))
        else:
            out.append(DiffLine("same", line[1:]))
    return out


def get_release(session: Session, release_id: int, *, for_user: User | None = None) -> Release:
    """The release; with ``for_user``, only if that user may see it (another's draft: 404)."""
    release = session.get(Release, release_id)
    if release is None or (for_user is not None and not may_see(for_user, release)):
        raise NotFound("No such release.")
    return release


def may_see(user: User, release: Release) -> bool:
    """A draft is its owner's (OWASP ASVS V4.2.1, object-level access); editors see all."""
    if release.status is not ReleaseStatus.DRAFT or release.owner_id is None:
        return True
    return user.role in (Role.ADMIN, Role.EDITOR) or release.owner_id == user.id


def visible_to(user: User) -> Any:
    """A WHERE clause that hides other people's drafts from a press officer."""
    if user.role in (Role.ADMIN, Role.EDITOR):
        return true()
    return or_(
        Release.status != ReleaseStatus.DRAFT,
        Release.owner_id.is_(None),
        Release.owner_id == user.id,
    )


def take_over(session: Session, release: Release, *, by: User) -> None:
    """An editor or admin makes a draft theirs (its author is away, or it is stuck)."""
    if by.role not in (Role.ADMIN, Role.EDITOR):
        raise Forbidden("Only an editor or admin can take a draft over.")
    release.owner_id = by.id
    session.flush()


# -- kinds -------------------------------------------------------------------------------------

DEFAULT_KINDS = ("Press release", "Update", "Report", "Statement")


def ensure_default_kinds(session: Session) -> list[ReleaseKind]:
    """Create the four standard kinds if there are no kinds yet."""
    kinds = list(session.scalars(select(ReleaseKind).order_by(ReleaseKind.position)))
    if kinds:
        return kinds
    for position, name in enumerate(DEFAULT_KINDS):
        session.add(ReleaseKind(name=name, slug=slugify(name), position=position))
    session.flush()
    return list(session.scalars(select(ReleaseKind).order_by(ReleaseKind.position)))


def list_kinds(session: Session) -> list[ReleaseKind]:
    return list(session.scalars(select(ReleaseKind).order_by(ReleaseKind.position, ReleaseKind.id)))


def save_kind(
    session: Session, *, name: str, position: int = 0, kind: ReleaseKind | None = None
) -> ReleaseKind:
    """Create or rename a kind of release (admins)."""
    name = name.strip()
    if not name:
        raise ValidationFailed("A kind needs a name.")
    slug = slugify(name)
    clash = session.scalar(
        select(ReleaseKind).where(
            (func.lower(ReleaseKind.name) == name.lower()) | (ReleaseKind.slug == slug),
            ReleaseKind.id != (kind.id if kind else 0),
        )
    )
    if clash is not None:
        raise Conflict(f"There is already a kind called {clash.name!r}.")
    if kind is None:
        kind = ReleaseKind(name=name, slug=slug, position=position)
        session.add(kind)
    else:
        kind.name, kind.slug, kind.position = name, slug, position
    session.flush()
    return kind


def delete_kind(session: Session, kind: ReleaseKind) -> None:
    in_use = session.scalar(select(func.count()).where(Release.kind_id == kind.id)) or 0
    if in_use:
        raise Conflict(f"{in_use} release(s) use the kind {kind.name!r}; rename it instead.")
    session.delete(kind)
    session.flush()


# -- press contacts ----------------------------------------------------------------------------


def list_contacts(session: Session) -> list[PressContact]:
    return list(session.scalars(select(PressContact).order_by(PressContact.name)))


def save_contact(
    session: Session,
    *,
    name: str,
    email: str,
    title: str = "",
    phone: str = "",
    contact: PressContact | None = None,
) -> PressContact:
    """Create or update a reusable press contact."""
    name, email = name.strip(), email.strip()
    if not name:
        raise ValidationFailed("A press contact needs a name.")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ValidationFailed("Enter a valid email address for the press contact.")
    if contact is None:
        contact = PressContact()
        session.add(contact)
    contact.name, contact.email = name[:200], email[:320]
    contact.title, contact.phone = title.strip()[:200], phone.strip()[:60]
    session.flush()
    return contact


def delete_contact(session: Session, contact: PressContact) -> None:
    session.delete(contact)
    session.flush()
