"""Reading and seeding the organisation row."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.organisation.models import Organisation
from distributor.settings import Settings


def get_organisation(session: Session, settings: Settings) -> Organisation:
    """The organisation row; an unsaved one built from settings before the first seed."""
    org = session.scalar(select(Organisation).order_by(Organisation.id).limit(1))
    if org is None:
        return organisation_from_settings(settings)
    return org


def organisation_from_settings(settings: Settings) -> Organisation:
    return Organisation(
        name=settings.org_name,
        tagline=settings.org_tagline,
        postal_address=settings.org_postal_address,
        timezone=settings.org_timezone,
        press_email=settings.press_email,
        website_url=settings.public_base_url,
        is_tracking_enabled=True,
    )


def ensure_organisation(session: Session, settings: Settings) -> Organisation:
    """Create the organisation row from settings if there is none yet."""
    org = session.scalar(select(Organisation).order_by(Organisation.id).limit(1))
    if org is None:
        org = organisation_from_settings(settings)
        session.add(org)
        session.flush()
    return org
