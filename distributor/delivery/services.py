"""Staff controls for sending a release, each safe to click twice, and what the pages show.

Services take the session, may flush and never commit; the request or task owns the
transaction. Work for workers is enqueued only after that transaction commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from distributor.accounts.models import User
from distributor.db import utcnow
from distributor.delivery import recipients
from distributor.delivery.ledger import (
    DELIVERY_MACHINE,
    FINAL_STATUSES,
    PENDING_STATUSES,
    SEND_MACHINE,
    db_now,
    has_due,
    has_pending,
    move_send,
)
from distributor.delivery.models import Delivery, DeliveryClaim, DeliveryStatus, Send, SendStatus
from distributor.errors import Conflict, NotFound
from distributor.releases.models import Release, ReleaseStatus
from distributor.releases.services import transition
from distributor.tasks_api import TaskRef, enqueue_after_commit

DISPATCH_SEND = TaskRef("delivery.dispatch_send")
_RATE_WINDOW_SECONDS = 20


# -- a send and its release move together ----------------------------------------------------

# The release statuses a send in each status may sit beside. A send that was reopened after
# it finished (retry failed, resend in doubt) runs beside a release already ``sent``.
RELEASE_BESIDE_SEND: dict[SendStatus, frozenset[ReleaseStatus]] = {
    SendStatus.SCHEDULED: frozenset({ReleaseStatus.SCHEDULED}),
    SendStatus.RUNNING: frozenset({ReleaseStatus.SENDING, ReleaseStatus.SENT}),
    SendStatus.PAUSED: frozenset({ReleaseStatus.SENDING, ReleaseStatus.SENT}),
    SendStatus.FINISHED: frozenset({ReleaseStatus.SENT, ReleaseStatus.WITHDRAWN}),
    SendStatus.CANCELLED: frozenset(
        {
            ReleaseStatus.APPROVED,
            ReleaseStatus.SENT,
            ReleaseStatus.WITHDRAWN,
            ReleaseStatus.DRAFT,
            ReleaseStatus.IN_REVIEW,
        }
    ),
}

_RELEASE_COMMENTS = {
    SendStatus.SCHEDULED: "Send scheduled",
    SendStatus.RUNNING: "Send started",
    SendStatus.FINISHED: "Every message sent",
    SendStatus.CANCELLED: "Send cancelled",
}


def release_status_for(send: SendStatus, release: ReleaseStatus) -> ReleaseStatus:
    """Where the release goes when its send moves to ``send`` (the one place that decides)."""
    if release in RELEASE_BESIDE_SEND[send]:
        return release
    return {
        SendStatus.SCHEDULED: ReleaseStatus.SCHEDULED,
        SendStatus.RUNNING: ReleaseStatus.SENDING,
        SendStatus.PAUSED: ReleaseStatus.SENDING,
        SendStatus.FINISHED: ReleaseStatus.SENT,
        SendStatus.CANCELLED: ReleaseStatus.APPROVED,
    }[send]


def move_send_and_release(
    session: Session,
    send: Send,
    target: SendStatus,
    release: Release,
    *,
    by: User | None,
    comment: str = "",
) -> None:
    """Move a send through ``SEND_MACHINE`` and its release through the release workflow in
    one step, so the two never drift apart (both raise on a move they do not allow)."""
    if send.status is not target:
        move_send(send, target)
    _follow(session, send, release, by=by, comment=comment)


def _follow(
    session: Session, send: Send, release: Release, *, by: User | None, comment: str = ""
) -> None:
    wanted = release_status_for(send.status, release.status)
    if wanted is not release.status:
        if wanted is ReleaseStatus.APPROVED and release.status is ReleaseStatus.SCHEDULED:
            release.scheduled_send_at = None
        transition(
            session,
            release,
            wanted,
            by=by,
            comment=comment or _RELEASE_COMMENTS.get(send.status, ""),
        )


@dataclass(frozen=True)
class AudienceBreakdown:
    total: int  # messages that will go out now (one per journalist)
    digest: int  # digest-mode journalists who get it in their next daily digest
    suppressed: int  # matched but suppressed/unsubscribed/paused, excluded
    by_beat: list[tuple[str, int]]  # beat name -> matched journalists
    by_list: list[tuple[str, int]]  # media list name -> matched journalists
    embargo_not_allowed: int = 0  # matched, left out of an embargoed send: not allowed
    embargo_probation: int = 0  # matched, left out of an embargoed send: on probation


def audience_breakdown(session: Session, release_id: int) -> AudienceBreakdown:
    """The exact count a send would go to now, with a breakdown by beat and media list."""
    counts = recipients.count_audience(session, release_id)
    return AudienceBreakdown(
        total=counts.total,
        digest=counts.digest,
        suppressed=counts.suppressed,
        by_beat=counts.by_beat,
        by_list=counts.by_list,
        embargo_not_allowed=counts.embargo_not_allowed,
        embargo_probation=counts.embargo_probation,
    )


def _release_for_update(session: Session, release_id: int) -> Release:
    # The row lock serialises two clicks on "Send" (PostgreSQL); SQLite has one writer anyway.
    session.execute(select(Release.id).where(Release.id == release_id).with_for_update())
    release = session.get(Release, release_id, populate_existing=True)
    if release is None:
        raise NotFound("Release not found")
    return release


def _send_for(session: Session, release_id: int) -> Send:
    send = session.scalar(select(Send).where(Send.release_id == release_id).with_for_update())
    if send is None:
        raise NotFound("This release has not been sent")
    return send


def _user(session: Session, user_id: int | None) -> User | None:
    return session.get(User, user_id) if user_id is not None else None


def _enqueue_dispatch(session: Session, send: Send) -> None:
    # Noted in the same transaction, so the sweep knows batch tasks are on their way.
    send.dispatched_at = utcnow()
    session.flush()
    enqueue_after_commit(session, DISPATCH_SEND, send.id)


def start_send(
    session: Session,
    release_id: int,
    *,
    requested_by_id: int | None,
    scheduled_for: dt.datetime | None = None,
) -> Send:
    """Send a release now, or schedule it; a second click finds the send already there."""
    now = utcnow()
    release = _release_for_update(session, release_id)
    by = _user(session, requested_by_id)
    send = session.scalar(select(Send).where(Send.release_id == release_id))
    is_future = scheduled_for is not None and scheduled_for > now
    if send is not None and send.status in (SendStatus.RUNNING, SendStatus.PAUSED):
        return send
    if send is not None and send.status is SendStatus.FINISHED:
        return send
    if send is None:
        send = Send(
            release_id=release_id,
            status=SendStatus.SCHEDULED,
            requested_by_id=requested_by_id,
            created_at=now,
        )
        session.add(send)
        session.flush()
    elif send.status is SendStatus.CANCELLED:
        send.requested_by_id = requested_by_id
    if is_future:
        send.scheduled_for = scheduled_for
        move_send_and_release(session, send, SendStatus.SCHEDULED, release, by=by)
        release.scheduled_send_at = scheduled_for
        session.flush()
        return send
    return _begin(session, send, release, by=by, now=now)


def _begin(
    session: Session, send: Send, release: Release, *, by: User | None, now: dt.datetime
) -> Send:
    """Freeze the recipients and start delivering (one transaction)."""
    if send.status is SendStatus.CANCELLED:
        # Started again: rows cancelled last time go back in the queue.
        session.execute(
            update(Delivery)
            .where(
                Delivery.send_id == send.id,
                DELIVERY_MACHINE.guard(
                    Delivery.status, DeliveryStatus.QUEUED, {DeliveryStatus.CANCELLED}
                ),
            )
            .values(
                status=DeliveryStatus.QUEUED, claim_id=None, next_attempt_at=None, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        send.cancelled_at = None
    move_send_and_release(session, send, SendStatus.RUNNING, release, by=by)
    send.started_at = send.started_at or now
    session.flush()
    recipients.freeze_recipients(session, send_id=send.id, release_id=release.id, now=now)
    send.recipient_count = int(
        session.scalar(select(func.count(Delivery.id)).where(Delivery.send_id == send.id)) or 0
    )
    session.flush()
    if not has_pending(session, send.id):
        _finish(session, send, now)
    else:
        _enqueue_dispatch(session, send)
    return send


def start_due_scheduled(session: Session, send_id: int, now: dt.datetime) -> bool:
    """The sweep starts a scheduled send whose time has come (system move, no user)."""
    send = session.get(Send, send_id, with_for_update=True)
    if send is None or send.status is not SendStatus.SCHEDULED:
        return False
    if send.scheduled_for is not None and send.scheduled_for > now:
        return False
    release = _release_for_update(session, send.release_id)
    if release.status not in (ReleaseStatus.SCHEDULED, ReleaseStatus.APPROVED):
        return False  # withdrawn or sent back meanwhile: leave the send alone
    _begin(session, send, release, by=None, now=now)
    return True


def _finish(session: Session, send: Send, now: dt.datetime) -> None:
    send.finished_at = now
    release = session.get(Release, send.release_id)
    assert release is not None
    move_send_and_release(session, send, SendStatus.FINISHED, release, by=None)
    session.flush()


def finish_if_done(session: Session, send_id: int) -> bool:
    """Mark the send finished (and the release sent) once no row is pending."""
    if has_pending(session, send_id):
        return False
    # Only one caller wins the guarded update, so the release moves once.
    won = session.execute(
        update(Send)
        .where(
            Send.id == send_id,
            SEND_MACHINE.guard(Send.status, SendStatus.FINISHED, {SendStatus.RUNNING}),
        )
        .values(status=SendStatus.FINISHED, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        return False
    send = session.get(Send, send_id, populate_existing=True)
    assert send is not None
    release = _release_for_update(session, send.release_id)
    _follow(session, send, release, by=None)
    session.flush()
    return True


def finish_unless_due(session: Session, send_id: int, now: dt.datetime) -> bool:
    """Finish the send unless rows of it are due now; True when they are (another batch is
    wanted)."""
    if has_due(session, send_id, now):
        return True
    finish_if_done(session, send_id)
    return False


def pause_send(session: Session, release_id: int) -> Send:
    """Stop claiming new batches; running batches hand back what they have not sent."""
    send = _send_for(session, release_id)
    if send.status is SendStatus.PAUSED:
        return send
    if send.status is not SendStatus.RUNNING:
        raise Conflict(f"A {send.status.value} send cannot be paused.")
    release = _release_for_update(session, release_id)
    move_send_and_release(session, send, SendStatus.PAUSED, release, by=None)
    send.paused_at = utcnow()
    send.pause_reason = ""
    session.flush()
    return send


def resume_send(session: Session, release_id: int) -> Send:
    send = _send_for(session, release_id)
    if send.status is SendStatus.RUNNING:
        return send
    if send.status is not SendStatus.PAUSED:
        raise Conflict(f"A {send.status.value} send cannot be resumed.")
    release = _release_for_update(session, release_id)
    move_send_and_release(session, send, SendStatus.RUNNING, release, by=None)
    send.paused_at = None
    send.pause_reason = ""
    session.flush()
    _enqueue_dispatch(session, send)
    return send


def cancel_send(session: Session, release_id: int) -> Send:
    """Cancel what has not gone out; messages already sent stay sent."""
    now = utcnow()
    send = _send_for(session, release_id)
    if send.status is SendStatus.CANCELLED:
        return send
    if send.status is SendStatus.FINISHED:
        raise Conflict("This send has finished; there is nothing left to cancel.")
    session.execute(
        update(Delivery)
        .where(
            Delivery.send_id == send.id,
            DELIVERY_MACHINE.guard(
                Delivery.status,
                DeliveryStatus.CANCELLED,
                {DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED},
            ),
        )
        .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    was_scheduled = send.status is SendStatus.SCHEDULED
    send.cancelled_at = now
    release = _release_for_update(session, release_id)
    move_send_and_release(
        session,
        send,
        SendStatus.CANCELLED,
        release,
        by=None,
        comment="Schedule cancelled" if was_scheduled else "Send cancelled",
    )
    session.flush()
    return send


def _reopen(session: Session, send: Send) -> None:
    if send.status is SendStatus.FINISHED:
        release = _release_for_update(session, send.release_id)
        move_send_and_release(session, send, SendStatus.RUNNING, release, by=None)
        send.finished_at = None
    session.flush()
    if send.status is SendStatus.RUNNING:
        _enqueue_dispatch(session, send)


def retry_failed(session: Session, release_id: int) -> int:
    """Queue failed rows again, except suppressed addresses and policy rejections."""
    send = _send_for(session, release_id)
    candidates = list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.send_id == send.id,
                Delivery.status == DeliveryStatus.FAILED,
                Delivery.is_policy_rejection.is_(False),
                Delivery.email.is_not(None),
            )
        )
    )
    blocked = recipients.suppressed_ids(session, candidates)
    ids = [i for i in candidates if i not in blocked]
    if not ids:
        return 0
    count = _requeue(session, ids, from_status=DeliveryStatus.FAILED)
    _reopen(session, send)
    return count


def resend_in_doubt(session: Session, release_id: int, delivery_ids: list[int]) -> int:
    """Staff checked with these journalists (or decided to risk a second copy): send the
    selected in-doubt rows again."""
    send = _send_for(session, release_id)
    ids = list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.send_id == send.id,
                Delivery.status == DeliveryStatus.IN_DOUBT,
                Delivery.id.in_(delivery_ids),
            )
        )
    )
    if not ids:
        return 0
    count = _requeue(session, ids, from_status=DeliveryStatus.IN_DOUBT)
    _reopen(session, send)
    return count


def _requeue(session: Session, ids: list[int], *, from_status: DeliveryStatus) -> int:
    now = utcnow()
    total = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(chunk),
                DELIVERY_MACHINE.guard(Delivery.status, DeliveryStatus.QUEUED, {from_status}),
            )
            .values(
                status=DeliveryStatus.QUEUED,
                claim_id=None,  # back in the queue (ledger.UNCLAIMED_STATUSES)
                next_attempt_at=None,
                first_attempt_at=None,  # a new lifetime for the retry
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total


@dataclass(frozen=True)
class SendProgress:
    status: str | None
    counts: dict[str, int]
    total: int
    done: int
    rate_per_second: float
    eta_seconds: float | None


def send_progress(session: Session, release_id: int) -> SendProgress:
    """Counts by state, current rate and time left, for the live progress panel."""
    send = session.scalar(select(Send).where(Send.release_id == release_id))
    if send is None:
        return SendProgress(None, {}, 0, 0, 0.0, None)
    rows = session.execute(
        select(Delivery.status, func.count(Delivery.id))
        .where(Delivery.send_id == send.id)
        .group_by(Delivery.status)
    ).all()
    counts = {status.value: 0 for status in DeliveryStatus}
    for status, n in rows:
        counts[DeliveryStatus(status).value] = int(n)
    total = sum(counts.values())
    done = sum(counts[s.value] for s in FINAL_STATUSES)
    now = utcnow()
    window_start = now - dt.timedelta(seconds=_RATE_WINDOW_SECONDS)
    if send.started_at is not None and send.started_at > window_start:
        window_start = send.started_at
    recent = int(
        session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.send_id == send.id,
                Delivery.status == DeliveryStatus.SENT,
                Delivery.sent_at >= window_start,
            )
        )
        or 0
    )
    seconds = max(1.0, (now - window_start).total_seconds())
    rate = recent / seconds if send.status is SendStatus.RUNNING else 0.0
    pending = sum(counts[s.value] for s in PENDING_STATUSES)
    eta = pending / rate if rate > 0 else None
    return SendProgress(send.status.value, counts, total, done, round(rate, 1), eta)


def list_in_doubt(session: Session, release_id: int) -> list[Delivery]:
    """Rows that may or may not have arrived: the only ones that need a person."""
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.release_id == release_id, Delivery.status == DeliveryStatus.IN_DOUBT)
            .order_by(Delivery.id)
        )
    )


# -- restarting quiet sends ------------------------------------------------------------------

# A running send with due rows and no claim for this long may have lost its broker messages.
QUIET_SECONDS = 5.0


def has_live_batch(session: Session, send_id: int, *, claim_timeout_seconds: int) -> bool:
    """Whether a batch is working on the send: an open claim whose heartbeat is fresh.

    The batch loop moves its claim's ``heartbeat_at`` every few seconds, on the database's
    clock; a claim that missed heartbeats for two thirds of the claim timeout belongs to a
    worker that is probably gone (recovery takes it at the full timeout). The comparison is
    made with the database's own clock, like recovery's.
    """
    fresh_since = db_now(session) - dt.timedelta(seconds=claim_timeout_seconds * 2 / 3)
    return (
        session.scalar(
            select(DeliveryClaim.id)
            .where(
                DeliveryClaim.send_id == send_id,
                DeliveryClaim.recovered_at.is_(None),
                DeliveryClaim.ended_at.is_(None),
                DeliveryClaim.heartbeat_at >= fresh_since,
            )
            .limit(1)
        )
        is not None
    )


def restart_if_quiet(
    session: Session, send_id: int, now: dt.datetime, *, claim_timeout_seconds: int
) -> bool:
    """The sweep's call for a running send: start its batch chains again if it went quiet."""
    send = session.get(Send, send_id, with_for_update=True)
    if send is None or not needs_dispatch(
        session, send, now, claim_timeout_seconds=claim_timeout_seconds
    ):
        return False
    _enqueue_dispatch(session, send)
    return True


def needs_dispatch(
    session: Session, send: Send, now: dt.datetime, *, claim_timeout_seconds: int
) -> bool:
    """Whether the sweep must start batch chains for a running send (a lost broker message).

    Each batch enqueues its successor while work is due, so a send needs the sweep only when
    nothing works on it: no claim for a few seconds, no live batch (a slow relay keeps one
    batch busy for minutes without claiming), and no batch tasks enqueued since the last
    claim that may still wait in the broker behind busy workers (they are given up on after
    the claim timeout).
    """
    if send.status is not SendStatus.RUNNING:
        return False
    last_claim = send.last_claim_at
    if last_claim is not None and (now - last_claim).total_seconds() <= QUIET_SECONDS:
        return False
    dispatched = send.dispatched_at
    if (
        dispatched is not None
        and (last_claim is None or last_claim < dispatched)
        and (now - dispatched).total_seconds() < claim_timeout_seconds
    ):
        return False
    if has_live_batch(session, send.id, claim_timeout_seconds=claim_timeout_seconds):
        return False
    return has_due(session, send.id, now)
