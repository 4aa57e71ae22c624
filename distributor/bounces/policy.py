"""What a bounce or complaint does to an address.

The kind of a failure comes from ``distributor.mail.outcomes``, the one place that reads
status codes and diagnostics. Hard failures (the mailbox is gone) suppress at once, as
listmonk and Mailman do for hard bounces. A policy rejection is about *us* (DMARC,
reputation, our envelope sender), so it flags the delivery and leaves the address alone; a
refusal of the message itself (size, content) or of our relay says nothing about the address
and does nothing to it. Soft failures count
toward ``BOUNCE_SOFT_THRESHOLD`` distinct deliveries within ``BOUNCE_SOFT_WINDOW_DAYS``
(Mailman's bounce score, counted per message so one message's repeated notices count once).
A complaint (RFC 5965 ``abuse``, ``fraud``, ``virus``, ``other``) suppresses at once.

Only proof suppresses at once: a report tied by our VERP token or Message-ID (which only a
recipient of the message can know), or one from a signed ESP webhook. A report tied only by
the address it names could be forged by anyone, so it scores like a soft bounce.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from distributor.audience.models import SuppressionReason
from distributor.audience.services import suppress
from distributor.bounces.models import Bounce, BounceKind, Complaint
from distributor.settings import Settings

# Ties only a recipient of our message can know: the opaque VERP token and our Message-ID.
PROOF = {"verp", "message-id"}
# RFC 6430: a "not-spam" report says the opposite of a complaint.
NOT_COMPLAINTS = {"not-spam"}


def bounce_score(session: Session, email: str, *, now: dt.datetime, window_days: int) -> int:
    """How many distinct messages to ``email`` bounced (soft, or hard unproven) in the window."""
    since = now - dt.timedelta(days=window_days)
    # A bounce we could not tie to a delivery counts once on its own.
    key = func.coalesce(Bounce.delivery_id, -Bounce.id)
    count = session.scalar(
        select(func.count(distinct(key))).where(
            Bounce.email == email.lower(),
            Bounce.kind.in_([BounceKind.SOFT, BounceKind.HARD]),
            Bounce.received_at >= since,
        )
    )
    return int(count or 0)


def apply_bounce(
    session: Session, settings: Settings, bounce: Bounce, *, is_authenticated: bool = False
) -> None:
    """Suppress, score or flag after a new bounce row was flushed.

    ``is_authenticated``: the report came through a signed ESP webhook, so its address is
    trusted even when no delivery of ours matches it.
    """
    if bounce.kind is BounceKind.POLICY:
        if bounce.delivery is not None:
            bounce.delivery.is_policy_rejection = True
        return
    if bounce.kind in (BounceKind.MESSAGE, BounceKind.RELAY):
        return  # the message's size or content, or our relay: not the address's doing
    # An unauthenticated report that nothing ties to a message we sent may be forged (anyone
    # can mail the bounce domain): it never suppresses anyone.
    if not bounce.email or (bounce.delivery is None and not is_authenticated):
        return
    if bounce.kind is BounceKind.HARD and (is_authenticated or bounce.matched_by in PROOF):
        note = f"{bounce.status_code} {bounce.diagnostic}".strip()[:500]
        suppress(session, bounce.email, SuppressionReason.HARD_BOUNCE, note=note)
        bounce.is_suppressing = True
        return
    # Soft bounces score; so does a hard one that only its address ties to us, since anyone
    # can forge a DSN naming any address. Real hard bounces over several releases still add up.
    score = bounce_score(
        session,
        bounce.email,
        now=bounce.received_at,
        window_days=settings.bounce_soft_window_days,
    )
    if score >= settings.bounce_soft_threshold:
        note = (
            f"{score} bounced messages within {settings.bounce_soft_window_days} days; "
            f"last {bounce.status_code} {bounce.diagnostic}"
        ).strip()[:500]
        suppress(session, bounce.email, SuppressionReason.SOFT_BOUNCE, note=note)
        bounce.is_suppressing = True


def apply_complaint(
    session: Session, complaint: Complaint, *, is_authenticated: bool = False
) -> None:
    """Suppress the complaining address (one complaint is enough)."""
    if complaint.feedback_type in NOT_COMPLAINTS or not complaint.email:
        return
    if not is_authenticated and complaint.matched_by not in PROOF:
        return  # an ARF report only the address ties to us could be forged
    note = f"{complaint.feedback_type} report from {complaint.user_agent or 'a mailbox provider'}"
    suppress(session, complaint.email, SuppressionReason.COMPLAINT, note=note[:500])
    complaint.is_suppressing = True
