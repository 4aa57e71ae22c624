"""Factories for release tests: kinds, beats and releases in a chosen workflow state."""

from __future__ import annotations

import datetime as dt
import io
import uuid

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience.models import Beat
from distributor.db import utcnow
from distributor.releases import services
from distributor.releases.models import Release, ReleaseKind, ReleaseStatus


def kind(session: Session, name: str = "Press release") -> ReleaseKind:
    services.ensure_default_kinds(session)
    found = session.scalar(select(ReleaseKind).where(ReleaseKind.name == name))
    assert found is not None
    return found


def beat(session: Session, slug: str = "climate", name: str = "Climate") -> Beat:
    found = session.scalar(select(Beat).where(Beat.slug == slug))
    if found is None:
        found = Beat(slug=slug, name=name)
        session.add(found)
        session.flush()
    return found


def make_release(
    session: Session,
    *,
    title: str | None = None,
    body: str = "Body text about the harbour.",
    summary: str = "A short summary.",
    kind_name: str = "Press release",
    beats: list[Beat] | None = None,
    status: ReleaseStatus = ReleaseStatus.DRAFT,
    embargo_until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Release:
    """A release moved through the real workflow (by the system) to ``status``."""
    now = now or utcnow()
    release = services.create_release(
        session,
        author=None,
        data=services.ReleaseInput(
            kind_id=kind(session, kind_name).id,
            title=title or f"Release {uuid.uuid4().hex[:8]}",
            summary=summary,
            body_markdown=body,
            beat_ids=[b.id for b in beats or []],
        ),
        now=now,
    )
    path = {
        ReleaseStatus.DRAFT: [],
        ReleaseStatus.IN_REVIEW: [ReleaseStatus.IN_REVIEW],
        ReleaseStatus.APPROVED: [ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED],
        ReleaseStatus.SCHEDULED: [
            ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED, ReleaseStatus.SCHEDULED
        ],
        ReleaseStatus.SENDING: [
            ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED, ReleaseStatus.SENDING
        ],
        ReleaseStatus.SENT: [
            ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED, ReleaseStatus.SENDING,
            ReleaseStatus.SENT,
        ],
        ReleaseStatus.WITHDRAWN: [ReleaseStatus.WITHDRAWN],
    }[status]  # fmt: skip
    for step in path:
        if step is ReleaseStatus.APPROVED:
            release.embargo_until = embargo_until
        services.transition(session, release, step, by=None, now=now)
    session.flush()
    return release


def image_bytes(width: int = 800, height: int = 500, fmt: str = "PNG") -> bytes:
    image = Image.new("RGB", (width, height), (20, 90, 120))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def staff(session: Session, role: Role) -> User:
    """A staff member for service tests (no password: these never log in)."""
    user = User(
        email=f"{role.value}-{uuid.uuid4().hex[:8]}@example.org",
        name=f"{role.label} {uuid.uuid4().hex[:4]}",
        password_hash="!",
        role=role,
    )
    session.add(user)
    session.flush()
    return user
