"""Demo audience: beats, ~40 fictional journalists at fictional outlets, two media lists.

Every name and outlet is invented; every address is under example.org/.net/.com (RFC 2606).
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.consent import CONSENT_TEXT_VERSION, ip_hash
from distributor.audience.models import (
    Beat,
    DeliveryMode,
    Journalist,
    LawfulBasis,
    MediaList,
    Outlet,
    Subscription,
    SubscriptionStatus,
)
from distributor.db import utcnow
from distributor.settings import Settings

DEMO_BEATS = [
    ("climate", "Climate", "Heat, floods, adaptation and the energy transition."),
    ("coastal-communities", "Coastal communities", "Harbour towns, ferries, tourism and erosion."),
    ("fisheries", "Fisheries", "Quotas, catches, boats and the people who crew them."),
    ("housing", "Housing", "Second homes, rents and building on the coast."),
    ("health", "Health", "Rural health services, water quality and heat."),
    ("policy", "Policy", "Councils, parliament and the rules that shape the coast."),
]

# (outlet, domain, country, desk beats)
DEMO_OUTLETS = [
    (
        "The Portmere Courier",
        "portmere-courier.example.org",
        "GB",
        ("coastal-communities", "housing"),
    ),
    ("Tidewatch Weekly", "tidewatch.example.net", "GB", ("climate", "coastal-communities")),
    ("North Sea Fishing News", "nsfn.example.com", "GB", ("fisheries",)),
    ("Radio Estuary", "radio-estuary.example.org", "GB", ("coastal-communities", "policy")),
    ("The Atlantic Ledger", "atlantic-ledger.example.com", "IE", ("climate", "policy")),
    ("Kustbladet", "kustbladet.example.net", "SE", ("fisheries", "climate")),
    ("Le Journal du Littoral", "littoral.example.org", "FR", ("coastal-communities", "health")),
    ("Harbour Health Review", "harbour-health.example.com", "GB", ("health",)),
    ("Westcountry Property Desk", "wc-property.example.net", "GB", ("housing",)),
    ("Civic Tide", "civic-tide.example.org", "GB", ("policy", "housing")),
    ("Blue Economy Wire", "blue-economy.example.com", "NL", ("fisheries", "policy")),
    ("Freelance", "freelance.example.net", "GB", ("climate", "health")),
]

FIRST = ["Ada", "Bram", "Cerys", "Dario", "Elin", "Farah", "Gwen", "Hamza", "Isla", "Jonas",
         "Kezia", "Luca", "Maren", "Nia", "Oskar", "Priya", "Rhys", "Saoirse", "Tomas", "Una"]  # fmt: skip
LAST = ["Abernethy", "Baptiste", "Carew", "Delacroix", "Evans", "Fennimore", "Gallo", "Hendry",
        "Ibsen", "Jory", "Kowalczyk", "Lindqvist", "Morgan", "Nakamura", "O'Dowd", "Penrose"]  # fmt: skip
ROLES = ["Environment correspondent", "News editor", "Reporter", "Features writer",
         "Political correspondent", "Producer", "Data reporter", "Freelance journalist"]  # fmt: skip

DEMO_LISTS = [
    (
        "National desks trusted with embargoes",
        "Editors who have honoured every embargo; they get embargoed releases early.",
    ),
    ("Regional broadcasters", "Radio and TV newsrooms along the coast for interview requests."),
]

DEMO_JOURNALISTS = 40


def ensure_demo_beats(session: Session) -> dict[str, Beat]:
    """The demo beats by slug, created if missing (the releases seeder does the same)."""
    beats = {b.slug: b for b in session.scalars(select(Beat))}
    for slug, name, description in DEMO_BEATS:
        if slug not in beats:
            beat = Beat(name=name, slug=slug, description=description, is_public=True)
            session.add(beat)
            beats[slug] = beat
        elif not beats[slug].description:
            beats[slug].description = description
    session.flush()
    return beats


def seed_audience(session: Session, settings: Settings) -> list[str]:
    """Idempotently add the demo audience; returns lines to print."""
    beats = ensure_demo_beats(session)
    rng = random.Random(2026)
    outlets: dict[str, Outlet] = {o.name: o for o in session.scalars(select(Outlet))}
    now = utcnow()
    created = 0
    people: list[tuple[Journalist, str]] = []
    for n in range(DEMO_JOURNALISTS):
        first, last = FIRST[n % len(FIRST)], LAST[(n * 7) % len(LAST)]
        outlet_name, domain, country, desk = DEMO_OUTLETS[n % len(DEMO_OUTLETS)]
        local = f"{first}.{last}".lower().replace("'", "")
        address = f"{local}@{domain}"
        journalist = session.scalar(
            select(Journalist).where(Journalist.email_normalized == address)
        )
        if journalist is None:
            outlet = outlets.get(outlet_name)
            if outlet is None:
                outlet = Outlet(name=outlet_name, website=f"https://{domain}/", country=country)
                session.add(outlet)
                outlets[outlet_name] = outlet
            joined = now - dt.timedelta(days=rng.randint(20, 400), minutes=rng.randint(0, 1440))
            journalist = Journalist(
                email=address,
                email_normalized=address,
                name=f"{first} {last}",
                outlet=outlet,
                role=ROLES[n % len(ROLES)],
                country=country,
                language="en" if country in {"GB", "IE"} else country.lower(),
                phone=f"+44 1632 96{n:04d}" if country == "GB" else "",
                delivery_mode=(
                    DeliveryMode.DAILY_DIGEST if n % 6 == 5 else DeliveryMode.EACH_RELEASE
                ),
                lawful_basis=LawfulBasis.CONSENT,
                created_at=joined,
            )
            session.add(journalist)
            session.flush()
            picked = set(desk) | ({rng.choice(list(beats))} if n % 3 == 0 else set())
            for slug in sorted(picked):
                confirmed_at = joined + dt.timedelta(minutes=rng.randint(2, 90))
                session.add(
                    Subscription(
                        journalist_id=journalist.id,
                        beat_id=beats[slug].id,
                        status=SubscriptionStatus.CONFIRMED,
                        source="public_form",
                        consent_at=confirmed_at,
                        consent_method="double_opt_in",
                        consent_text_version=CONSENT_TEXT_VERSION,
                        consent_ip_hash=ip_hash(settings, f"198.51.100.{n + 1}"),
                        confirmed_at=confirmed_at,
                        created_at=joined,
                    )
                )
            created += 1
        people.append((journalist, outlet_name))
    lists = 0
    for index, (name, description) in enumerate(DEMO_LISTS):
        media_list = session.scalar(select(MediaList).where(MediaList.name == name))
        if media_list is not None:
            continue
        media_list = MediaList(name=name, description=description)
        if index == 0:
            media_list.journalists = [j for j, _ in people if "Freelance" not in _][::3]
        else:
            chosen = [j for j, outlet in people if outlet.startswith("Radio")]
            chosen += [j for j, _ in people[1:40:9] if j not in chosen]
            media_list.journalists = chosen
        session.add(media_list)
        lists += 1
    session.flush()
    if not created and not lists:
        return []
    return [f"Audience: {created} demo journalists, {lists} media lists, {len(beats)} beats."]
