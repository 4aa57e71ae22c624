"""Demo identity for `make run`: boilerplate and spokespeople."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.organisation.models import Spokesperson
from distributor.organisation.services import ensure_organisation
from distributor.settings import Settings

DEMO_BOILERPLATE = (
    "The Harbour Light Foundation is an independent charity that funds reporting on coastal "
    "communities, flood risk and the working harbours of the north-west coast.\n\n"
    "Founded in 2009 by a group of retired lifeboat crew and local editors, it publishes its "
    "grant decisions and accounts in full every year."
)
DEMO_SPOKESPEOPLE = [
    ("Rhiannon Vale", "Director of communications", "rhiannon@harbourlight.example", "+44 1632 960 114"),
    ("Tomasz Brennan", "Head of research", "tomasz@harbourlight.example", "+44 1632 960 207"),
]  # fmt: skip


def seed_organisation_demo(session: Session, settings: Settings) -> list[str]:
    """Fill in the demo organisation's identity once; never overwrite what an admin set."""
    org = ensure_organisation(session, settings)
    notes: list[str] = []
    if not org.boilerplate:
        org.boilerplate = DEMO_BOILERPLATE
        org.social_links = "https://social.example/@harbourlight\nhttps://www.linkedin.com/company/harbour-light-example"
        notes.append("organisation: demo boilerplate and social links")
    if session.scalar(select(Spokesperson.id).limit(1)) is None:
        for position, (name, title, email, phone) in enumerate(DEMO_SPOKESPEOPLE):
            session.add(
                Spokesperson(
                    organisation=org,
                    name=name,
                    title=title,
                    email=email,
                    phone=phone,
                    position=position,
                )
            )
        notes.append(f"organisation: {len(DEMO_SPOKESPEOPLE)} demo spokespeople")
    session.flush()
    return notes
