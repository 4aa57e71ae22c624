"""Registering a release's links is idempotent and URLs are formatted from settings."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.reports.sample import seed_sent_release
from distributor.settings import Settings
from distributor.tracking.links import click_url, pixel_url, register_links
from distributor.tracking.models import TrackedLink


def test_register_links_is_idempotent_and_keeps_first_order(session: Session) -> None:
    release = seed_sent_release(session, recipients=1)
    first = register_links(session, release.id, ["https://a.example/1", "https://a.example/2"])
    again = register_links(
        session, release.id, ["https://a.example/2", "https://a.example/3", "https://a.example/2"]
    )
    assert again["https://a.example/2"] == first["https://a.example/2"]
    assert len(set(again.values()) | set(first.values())) == 3
    count = session.scalar(
        select(func.count()).select_from(TrackedLink).where(TrackedLink.release_id == release.id)
    )
    assert count == 3 + 3  # the sample's own three links plus ours
    positions = dict(
        session.execute(
            select(TrackedLink.url, TrackedLink.position).where(
                TrackedLink.release_id == release.id
            )
        ).all()
    )
    assert positions["https://a.example/1"] < positions["https://a.example/3"]


def test_tracking_urls_come_from_the_public_base_url() -> None:
    settings = Settings(public_base_url="https://news.example.org/")
    assert pixel_url(settings, "tok_1") == "https://news.example.org/t/o/tok_1.gif"
    assert click_url(settings, "tok_1", 42) == "https://news.example.org/t/c/tok_1/42"
