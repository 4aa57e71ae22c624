"""The preference centre: beats, delivery mode, pause, leaving, and the data rights.

Download (GDPR Art. 15 and 20) and erasure (Art. 17); leaving as easy as joining (Art. 7(3)).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from distributor.audience import tokens
from distributor.audience.consent import CONSENT_TEXT_VERSION, ip_hash
from distributor.audience.deletion import wait_for_freezes
from distributor.audience.models import (
    Beat,
    ConfirmationRequest,
    DeliveryMode,
    ImportRowError,
    Journalist,
    JournalistMerge,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from distributor.audience.services import (
    find_suppression,
    media_lists_of,
    suppress,
)
from distributor.db import utcnow
from distributor.settings import Settings
from distributor.signals import journalist_erased, personal_data_requested


def preference_beats(session: Session, journalist: Journalist) -> list[Beat]:
    """Beats offered in the preference centre: public ones and any the journalist follows."""
    followed = {s.beat_id for s in journalist.subscriptions}
    return [
        b
        for b in session.scalars(select(Beat).order_by(Beat.name))
        if b.is_public or b.id in followed
    ]


def active_beat_ids(journalist: Journalist) -> set[int]:
    return {
        s.beat_id
        for s in journalist.subscriptions
        if s.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PENDING)
    }


def update_preferences(
    session: Session,
    settings: Settings,
    journalist_id: int,
    *,
    beat_ids: list[int],
    delivery_mode: DeliveryMode,
    is_paused: bool,
    ip: str | None = None,
    now: dt.datetime | None = None,
) -> Journalist:
    """Apply the preference centre form. The token proved the mailbox, so new beats confirm."""
    now = now or utcnow()
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        raise tokens.InvalidToken("This link is no longer valid.")
    allowed = {b.id for b in preference_beats(session, journalist)}
    wanted = set(beat_ids) & allowed
    by_beat = {s.beat_id: s for s in journalist.subscriptions}
    for beat_id in wanted:
        sub = by_beat.get(beat_id)
        if sub is None:
            sub = Subscription(beat_id=beat_id, source="preference_centre", created_at=now)
            journalist.subscriptions.append(sub)
        if sub.status != SubscriptionStatus.CONFIRMED:
            sub.status = SubscriptionStatus.CONFIRMED
            sub.consent_at = now
            sub.confirmed_at = now
            sub.unsubscribed_at = None
            sub.consent_method = "preference_centre"
            sub.consent_text_version = CONSENT_TEXT_VERSION
            sub.consent_ip_hash = ip_hash(settings, ip)
    for beat_id, sub in by_beat.items():
        if beat_id not in wanted and sub.status != SubscriptionStatus.UNSUBSCRIBED:
            sub.status = SubscriptionStatus.UNSUBSCRIBED
            sub.unsubscribed_at = now
    journalist.delivery_mode = delivery_mode
    journalist.is_paused = is_paused
    if wanted:
        suppression = find_suppression(session, journalist.email)
        if suppression is not None and suppression.reason == SuppressionReason.UNSUBSCRIBED_ALL:
            session.delete(suppression)
    session.flush()
    return journalist


def unsubscribe_all(
    session: Session, journalist_id: int, *, note: str = "", now: dt.datetime | None = None
) -> bool:
    """Unsubscribe from everything, effective at once; False when there is no such journalist.

    The address goes on the suppression list too, so media lists stop reaching it.
    """
    now = now or utcnow()
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        return False
    for sub in journalist.subscriptions:
        if sub.status != SubscriptionStatus.UNSUBSCRIBED:
            sub.status = SubscriptionStatus.UNSUBSCRIBED
            sub.unsubscribed_at = now
    suppress(session, journalist.email, SuppressionReason.UNSUBSCRIBED_ALL, note=note)
    session.flush()
    return True


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_personal_data(session: Session, journalist_id: int) -> dict[str, Any]:
    """Everything we hold about one journalist, for their own download (GDPR Art. 15/20)."""
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        raise tokens.InvalidToken("This link is no longer valid.")
    suppression = find_suppression(session, journalist.email)
    data: dict[str, Any] = {
        "email": journalist.email,
        "name": journalist.name,
        "outlet": journalist.outlet.name if journalist.outlet else "",
        "role": journalist.role,
        "country": journalist.country,
        "language": journalist.language,
        "phone": journalist.phone,
        "notes": journalist.notes,
        "delivery_mode": journalist.delivery_mode.value,
        "is_paused": journalist.is_paused,
        "lawful_basis": journalist.lawful_basis.value,
        "created_at": _iso(journalist.created_at),
        "subscriptions": [
            {
                "beat": s.beat.name,
                "status": s.status.value,
                "source": s.source,
                "consent_at": _iso(s.consent_at),
                "consent_method": s.consent_method,
                "consent_text_version": s.consent_text_version,
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
            }
            for s in journalist.subscriptions
        ],
        "media_lists": [m.name for m in media_lists_of(session, journalist.id)],
        "deliveries": [],  # the delivery package's section
        "suppression": (
            {"reason": suppression.reason.value, "since": _iso(suppression.created_at)}
            if suppression is not None
            else None
        ),
    }
    # What other packages hold about the journalist comes from each of them.
    for _receiver, section in personal_data_requested.send(journalist.id, session=session):
        if section:
            data.update(section)
    return data


def erase_journalist(session: Session, journalist_id: int) -> bool:
    """Forget a journalist: history anonymised, address suppressed by hash only (Art. 17)."""
    journalist = session.get(Journalist, journalist_id)
    if journalist is None:
        return False
    wait_for_freezes(session)  # deleted below: no send may be freezing it meanwhile
    address = journalist.email_normalized
    # Deliveries, bounces and complaints are anonymised by their own packages' receivers.
    journalist_erased.send(journalist.id, session=session, address=address, email=journalist.email)
    suppression = find_suppression(session, address)
    if suppression is None:
        suppress(session, address, SuppressionReason.ERASED)
    else:
        # Keep a stronger reason (do-not-contact, bounce, complaint) but forget the address.
        if suppression.reason == SuppressionReason.UNSUBSCRIBED_ALL:
            suppression.reason = SuppressionReason.ERASED
        suppression.address = None
        suppression.note = ""
    session.execute(
        delete(ImportRowError).where(ImportRowError.email.in_([address, journalist.email]))
    )
    session.execute(delete(JournalistMerge).where(JournalistMerge.kept_id == journalist.id))
    session.execute(
        update(ConfirmationRequest)
        .where(ConfirmationRequest.journalist_id == journalist.id)
        .values(journalist_id=None)
        .execution_options(synchronize_session=False)
    )
    session.delete(journalist)
    session.flush()
    return True
