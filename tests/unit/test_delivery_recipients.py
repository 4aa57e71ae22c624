"""Who gets a release: dedupe across beats, media lists, suppression, pauses, digests."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import DeliveryMode, SubscriptionStatus, SuppressionReason
from distributor.audience.services import suppress
from distributor.db import utcnow
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.delivery.recipients import freeze_recipients
from distributor.delivery.services import audience_breakdown
from tests.support import delivery_factories as f
from tests.support.delivery_seed import approved_release, media_list, person, subscribe


def _world(session: Session):
    climate, energy, sport = (
        f.beat(session, "Climate"),
        f.beat(session, "Energy"),
        f.beat(session, "Sport"),
    )
    both = person(session, "both@a.example")
    subscribe(session, both, [climate, energy])
    only_energy = person(session, "energy@b.example")
    subscribe(session, only_energy, [energy])
    off_beat = person(session, "sport@c.example")
    subscribe(session, off_beat, [sport])
    pending = person(session, "pending@d.example")
    subscribe(session, pending, [climate], SubscriptionStatus.PENDING)
    unsubscribed = person(session, "gone@d.example")
    subscribe(session, unsubscribed, [climate], SubscriptionStatus.UNSUBSCRIBED)
    digest = person(session, "digest@e.example", mode=DeliveryMode.DAILY_DIGEST)
    subscribe(session, digest, [climate])
    paused = person(session, "paused@f.example", paused=True)
    subscribe(session, paused, [climate])
    erased = person(session, "erased@f.example", erased=True)
    subscribe(session, erased, [climate])
    bounced = person(session, "Bounced@G.example")
    subscribe(session, bounced, [climate])
    suppress(session, "bounced@g.example", SuppressionReason.HARD_BOUNCE)
    listed = person(session, "desk@h.example")
    listed_and_subscribed = both
    desks = media_list(session, "National desks", [listed, listed_and_subscribed])
    release = approved_release(session, beats=[climate, energy], lists=[desks])
    return release, {"both": both, "energy": only_energy, "digest": digest, "listed": listed}


def test_breakdown_counts_each_journalist_once(session: Session) -> None:
    release, _ = _world(session)
    counts = audience_breakdown(session, release.id)
    # both, energy, listed now; digest in the digest; paused, erased, bounced left out.
    assert (counts.total, counts.digest, counts.suppressed) == (3, 1, 3)
    assert dict(counts.by_beat) == {"Climate": 2, "Energy": 2}
    assert dict(counts.by_list) == {"National desks": 2}


def test_freeze_writes_one_row_per_journalist_with_what_matched(session: Session) -> None:
    release, _people = _world(session)
    send = Send(release_id=release.id, status=SendStatus.RUNNING)
    session.add(send)
    session.flush()
    added = freeze_recipients(session, send_id=send.id, release_id=release.id, now=utcnow())
    assert added == 4
    rows = {
        d.email: d for d in session.scalars(select(Delivery).where(Delivery.send_id == send.id))
    }
    assert set(rows) == {"both@a.example", "energy@b.example", "desk@h.example", "digest@e.example"}
    both = rows["both@a.example"]
    assert set(both.matched_beats.split(", ")) == {"Climate", "Energy"}
    assert both.matched_lists == "National desks"
    assert both.recipient_domain == "a.example"
    assert rows["digest@e.example"].status is DeliveryStatus.DIGEST
    assert rows["desk@h.example"].status is DeliveryStatus.QUEUED
    assert rows["desk@h.example"].matched_beats == ""
    tokens = {d.verp_token for d in rows.values()}
    assert len(tokens) == 4 and all(len(t) >= 20 for t in tokens)
    # Running it again adds nobody: the unique (release, journalist) holds.
    assert freeze_recipients(session, send_id=send.id, release_id=release.id, now=utcnow()) == 0


def test_breakdown_counts_what_the_freeze_writes(session: Session) -> None:
    # The breakdown classifies only the journalists the rules may not mail now; the freeze
    # classifies everyone matched. Both must agree, with two beats of the same name too.
    release, people = _world(session)
    twin = f.beat(session, "Climate")  # another beat called Climate, also on the release
    subscribe(session, people["energy"], [twin])
    subscribe(session, people["both"], [twin])  # on both beats called Climate: counted once
    subscribe(session, person(session, "twin@i.example"), [twin])
    release.beats.append(twin)
    session.flush()
    counts = audience_breakdown(session, release.id)
    assert dict(counts.by_beat) == {"Climate": 4, "Energy": 2}  # energy@ and twin@ join Climate
    send = Send(release_id=release.id, status=SendStatus.RUNNING)
    session.add(send)
    session.flush()
    added = freeze_recipients(session, send_id=send.id, release_id=release.id, now=utcnow())
    assert added == counts.total + counts.digest == 5
    statuses = [
        d.status for d in session.scalars(select(Delivery).where(Delivery.send_id == send.id))
    ]
    assert statuses.count(DeliveryStatus.DIGEST) == counts.digest
