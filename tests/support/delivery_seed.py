"""Seeding audiences for delivery-engine tests: beats, subscriptions, media lists, releases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from distributor.audience.models import (
    Beat,
    DeliveryMode,
    Journalist,
    MediaList,
    Subscription,
    SubscriptionStatus,
    media_list_members,
)
from distributor.db import Database, utcnow
from distributor.delivery.models import Delivery, Send, SendStatus
from distributor.delivery.ratelimit import Limits, LocalRateLimiter, RateLimiter
from distributor.delivery.recipients import freeze_recipients
from distributor.delivery.sender import run_batch
from distributor.mail.transport import parse_smtp_urls
from distributor.releases.models import (
    Release,
    ReleaseStatus,
    release_beats,
    release_media_lists,
)
from distributor.settings import Settings
from tests.support import delivery_factories as f


def subscribe(
    session: Session,
    journalist: Journalist,
    beats: Iterable[Beat],
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED,
) -> None:
    for b in beats:
        session.add(Subscription(journalist_id=journalist.id, beat_id=b.id, status=status))
    session.flush()


def person(
    session: Session,
    email: str,
    *,
    mode: DeliveryMode = DeliveryMode.EACH_RELEASE,
    paused: bool = False,
    erased: bool = False,
) -> Journalist:
    j = f.journalist(session, email=email, name=email.split("@")[0].title())
    j.delivery_mode = mode
    j.is_paused = paused
    if erased:
        j.erased_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    session.flush()
    return j


def media_list(session: Session, name: str, members: Iterable[Journalist]) -> MediaList:
    ml = MediaList(name=name)
    session.add(ml)
    session.flush()
    for j in members:
        session.execute(insert(media_list_members).values(media_list_id=ml.id, journalist_id=j.id))
    return ml


def approved_release(
    session: Session, beats: Iterable[Beat] = (), lists: Iterable[MediaList] = ()
) -> Release:
    r = f.release(session, photo=False, attachments=False)
    r.status = ReleaseStatus.APPROVED
    for b in beats:
        session.execute(insert(release_beats).values(release_id=r.id, beat_id=b.id))
    for ml in lists:
        session.execute(insert(release_media_lists).values(release_id=r.id, media_list_id=ml.id))
    session.flush()
    return r


def bulk_release(session: Session, n: int, *, domains: int = 20) -> tuple[int, list[str]]:
    """An approved release whose one beat has ``n`` confirmed subscribers (bulk inserted)."""
    now = dt.datetime.now(dt.UTC)
    beat = f.beat(session, "Bulk beat")
    emails = [f"r{i}@d{i % domains}.example" for i in range(n)]
    for start in range(0, n, 5000):
        session.execute(
            insert(Journalist),
            [
                {
                    "email": e,
                    "email_normalized": e,
                    "name": f"Reporter {start + k}",
                    "created_at": now,
                    "updated_at": now,
                }
                for k, e in enumerate(emails[start : start + 5000])
            ],
        )
    ids = list(session.scalars(select(Journalist.id).where(Journalist.email.in_(emails[:1]))))
    all_ids = list(
        session.scalars(select(Journalist.id).where(Journalist.email.like("r%@d%.example")))
    )
    assert ids
    for start in range(0, len(all_ids), 5000):
        session.execute(
            insert(Subscription),
            [
                {
                    "journalist_id": jid,
                    "beat_id": beat.id,
                    "status": SubscriptionStatus.CONFIRMED,
                    "confirmed_at": now,
                    "created_at": now,
                }
                for jid in all_ids[start : start + 5000]
            ],
        )
    release = approved_release(session, beats=[beat])
    return release.id, emails


def running_send(db: Database, n: int, *, domains: int) -> tuple[int, list[str]]:
    """A running send of a bulk release to ``n`` journalists, frozen: (send id, addresses)."""
    with db.session() as session, session.begin():
        release_id, emails = bulk_release(session, n, domains=domains)
        send = Send(release_id=release_id, status=SendStatus.RUNNING, started_at=utcnow())
        session.add(send)
        session.flush()
        freeze_recipients(session, send_id=send.id, release_id=release_id, now=utcnow())
        return send.id, emails


def rows_by_email(db: Database, send_id: int) -> dict[str, Delivery]:
    """The send's ledger rows, by recipient address."""
    with db.session() as session:
        return {
            str(d.email): d
            for d in session.scalars(select(Delivery).where(Delivery.send_id == send_id))
        }


def open_limiter(**overrides: int) -> LocalRateLimiter:
    """An in-process rate limiter with no limits unless ``overrides`` set some."""
    values = {
        "rate_per_second": 0,
        "domain_rate_per_second": 0,
        "domain_concurrency": 0,
        "domain_backoff_seconds": 600,
        "lease_seconds": 60,
        **overrides,
    }
    return LocalRateLimiter(Limits(**values))


def drain(
    db: Database,
    settings: Settings,
    send_id: int,
    url: str,
    limiter: RateLimiter | None = None,
) -> None:
    """Run batches of the send through the relay at ``url`` until one claims nothing or the
    send stops (at most 20)."""
    for _ in range(20):
        result = run_batch(
            db, settings, send_id, limiter=limiter or open_limiter(), relays=parse_smtp_urls(url)
        )
        if result.claimed == 0 or not result.is_send_running:
            return
