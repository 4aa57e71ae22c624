"""The demo audience seeder: idempotent, fictional addresses only, consent on record."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.audience.demo import DEMO_BEATS, seed_audience
from distributor.audience.models import (
    Beat,
    Journalist,
    MediaList,
    Subscription,
    SubscriptionStatus,
)
from distributor.settings import Settings


def test_seed_audience_is_idempotent_and_fictional(session: Session, settings: Settings) -> None:
    first = seed_audience(session, settings)
    second = seed_audience(session, settings)
    assert first and second == []
    people = list(session.scalars(select(Journalist)))
    assert len(people) == 40
    assert all(p.email.endswith((".example.org", ".example.net", ".example.com")) for p in people)
    slugs = set(session.scalars(select(Beat.slug)))
    assert {slug for slug, _, _ in DEMO_BEATS} <= slugs
    subs = list(session.scalars(select(Subscription)))
    assert subs and all(
        s.status == SubscriptionStatus.CONFIRMED and s.consent_at and s.consent_method for s in subs
    )
    lists = list(session.scalars(select(MediaList)))
    assert len(lists) == 2 and all(m.journalists for m in lists)
    assert session.scalar(select(func.count()).select_from(Journalist)) == 40
