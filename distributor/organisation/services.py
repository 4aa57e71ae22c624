"""Reading, seeding and editing the organisation row and its spokespeople."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import after_commit
from distributor.errors import NotFound, ValidationFailed
from distributor.organisation.media import delete_logo, process_logo
from distributor.organisation.models import DEFAULT_BRAND_COLOUR, Organisation, Spokesperson
from distributor.photos import delete_photo_files, process_photo
from distributor.settings import Settings
from distributor.storage import MediaStorage

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_SOCIAL_LINKS = 8


def get_organisation(session: Session, settings: Settings) -> Organisation:
    """The organisation row; an unsaved one built from settings before the first seed."""
    org = session.scalar(select(Organisation).order_by(Organisation.id).limit(1))
    if org is None:
        return organisation_from_settings(settings)
    return org


def organisation_from_settings(settings: Settings) -> Organisation:
    """The first-run defaults: the ``ORG_*`` and ``PRESS_EMAIL`` environment variables."""
    return Organisation(
        name=settings.org_name,
        tagline=settings.org_tagline,
        postal_address=settings.org_postal_address,
        timezone=settings.org_timezone,
        press_email=settings.press_email,
        website_url=settings.public_base_url,
        is_tracking_enabled=True,
        brand_colour=DEFAULT_BRAND_COLOUR,
        boilerplate="",
        social_links="",
        spokespeople=[],
    )


def ensure_organisation(session: Session, settings: Settings) -> Organisation:
    """Create the organisation row from settings if there is none yet."""
    org = session.scalar(select(Organisation).order_by(Organisation.id).limit(1))
    if org is None:
        org = organisation_from_settings(settings)
        session.add(org)
        session.flush()
    return org


@dataclass(frozen=True)
class OrganisationInput:
    name: str
    tagline: str
    website_url: str
    press_email: str
    postal_address: str
    timezone: str
    brand_colour: str
    boilerplate: str
    social_links: str


def _check_links(text: str) -> str:
    links = [line.strip() for line in text.splitlines() if line.strip()]
    if len(links) > MAX_SOCIAL_LINKS:
        raise ValidationFailed(f"At most {MAX_SOCIAL_LINKS} social links.")
    for link in links:
        parts = urlsplit(link)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValidationFailed(f"Not a web address: {link[:80]} (start it with https://).")
    return "\n".join(links)


def update_organisation(
    session: Session,
    settings: Settings,
    data: OrganisationInput,
    *,
    storage: MediaStorage,
    logo: IO[bytes] | None = None,
    remove_logo: bool = False,
) -> Organisation:
    """Save the Organisation page; the newsroom and every later mail use it at once."""
    org = ensure_organisation(session, settings)
    name = " ".join(data.name.split())
    if not name:
        raise ValidationFailed("The organisation needs a name.")
    if not data.postal_address.strip():
        raise ValidationFailed("A postal address is required: every mail prints it (CAN-SPAM).")
    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"Unknown time zone: {data.timezone[:64]}") from exc
    if not _COLOUR.fullmatch(data.brand_colour):
        raise ValidationFailed("The brand colour must look like #0b5cad.")
    org.name = name
    org.tagline = " ".join(data.tagline.split())
    org.website_url = data.website_url.strip()
    org.press_email = data.press_email.strip()
    org.postal_address = data.postal_address.strip()
    org.timezone = data.timezone
    org.brand_colour = data.brand_colour.lower()
    org.boilerplate = data.boilerplate.strip()
    org.social_links = _check_links(data.social_links)
    old_logo = org.logo_key
    if logo is not None:
        org.logo_key = process_logo(logo, storage)
    elif remove_logo:
        org.logo_key = None
    if old_logo and old_logo != org.logo_key:
        after_commit(session, lambda: delete_logo(storage, old_logo))
    session.flush()
    return org


def add_spokesperson(
    session: Session,
    settings: Settings,
    *,
    name: str,
    title: str,
    email: str,
    phone: str,
    storage: MediaStorage,
    photo: IO[bytes] | None = None,
) -> Spokesperson:
    """Add someone journalists may call; their photo is checked like a release photo."""
    org = ensure_organisation(session, settings)
    if not name.strip():
        raise ValidationFailed("A spokesperson needs a name.")
    if not (email.strip() or phone.strip()):
        raise ValidationFailed("Give an email address or a phone number to reach them.")
    person = Spokesperson(
        organisation=org,
        name=" ".join(name.split()),
        title=" ".join(title.split()),
        email=email.strip(),
        phone=" ".join(phone.split()),
        position=len(org.spokespeople),
    )
    if photo is not None:
        person.photo_key = process_photo(photo, storage).key
    session.add(person)
    session.flush()
    return person


def remove_spokesperson(session: Session, storage: MediaStorage, spokesperson_id: int) -> None:

    person = session.get(Spokesperson, spokesperson_id)
    if person is None:
        raise NotFound("No such spokesperson")
    key = person.photo_key
    session.delete(person)
    session.flush()
    if key:
        after_commit(session, lambda: delete_photo_files(storage, key))
