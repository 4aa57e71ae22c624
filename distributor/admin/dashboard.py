"""The staff home: what waits for whom, what is about to go out, what is going out, and how
the last releases did. Read-only; every figure comes from the module that owns it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from distributor.accounts.models import Role, User
from distributor.delivery.models import Send, SendStatus
from distributor.delivery.services import SendProgress, send_progress
from distributor.releases.models import Release, ReleaseStatus, ReleaseTransition
from distributor.reports.services import ReleaseSummary, recent_releases


@dataclass(frozen=True)
class Waiting:
    release: Release
    since: dt.datetime
    comment: str = ""


@dataclass(frozen=True)
class Going:
    release: Release
    send: Send
    progress: SendProgress


@dataclass
class Dashboard:
    review_queue: list[Waiting] = field(default_factory=list)
    sent_back_to_me: list[Waiting] = field(default_factory=list)
    scheduled: list[Going] = field(default_factory=list)
    in_progress: list[Going] = field(default_factory=list)
    recent: list[ReleaseSummary] = field(default_factory=list)


def _last_move(session: Session, release_id: int) -> ReleaseTransition | None:
    return session.scalar(
        select(ReleaseTransition)
        .where(ReleaseTransition.release_id == release_id)
        .order_by(ReleaseTransition.created_at.desc(), ReleaseTransition.id.desc())
        .limit(1)
    )


def build_dashboard(session: Session, user: User, *, recent: int = 5) -> Dashboard:
    """Everything the staff home shows for ``user``."""
    board = Dashboard()
    in_review = session.scalars(
        select(Release)
        .where(Release.status == ReleaseStatus.IN_REVIEW)
        .order_by(Release.updated_at)
        .options(defer(Release.body_markdown), defer(Release.body_html))
        .limit(20)
    ).all()
    for release in in_review:
        # Press officers see where their own releases stand; editors see the whole queue.
        if user.role is Role.PRESS_OFFICER and release.created_by_id != user.id:
            continue
        move = _last_move(session, release.id)
        board.review_queue.append(Waiting(release, move.created_at if move else release.updated_at))
    drafts = session.scalars(
        select(Release)
        .where(Release.status == ReleaseStatus.DRAFT, Release.created_by_id == user.id)
        .order_by(Release.updated_at.desc())
        .options(defer(Release.body_markdown), defer(Release.body_html))
        .limit(20)
    ).all()
    for release in drafts:
        move = _last_move(session, release.id)
        if move is not None and move.from_status is ReleaseStatus.IN_REVIEW:
            board.sent_back_to_me.append(Waiting(release, move.created_at, move.comment))
    sends = session.execute(
        select(Send, Release)
        .join(Release, Release.id == Send.release_id)
        .where(Send.status.in_([SendStatus.SCHEDULED, SendStatus.RUNNING, SendStatus.PAUSED]))
        .order_by(Send.scheduled_for, Send.id)
    ).all()
    for send, release in sends:
        going = Going(release, send, send_progress(session, release.id))
        if send.status is SendStatus.SCHEDULED:
            board.scheduled.append(going)
        else:
            board.in_progress.append(going)
    board.recent = recent_releases(session, limit=recent)
    return board
