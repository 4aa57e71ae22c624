"""The staff journalists list pages by keyset: every journalist exactly once, both ways."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience import services
from tests.support import delivery_factories as f
from tests.support.delivery_seed import subscribe


def _walk(session: Session, **filters: Any) -> tuple[list[int], list[int]]:
    """Every page forwards from the start, then backwards from the last page."""
    forwards: list[list[int]] = []
    page = services.search_journalists(session, per_page=4, **filters)
    while True:
        forwards.append([j.id for j in page.journalists])
        if page.next_after is None:
            break
        page = services.search_journalists(
            session,
            per_page=4,
            after=page.next_after,
            **filters,
        )
    backwards: list[list[int]] = [forwards[-1]]
    while page.previous_before is not None:
        page = services.search_journalists(
            session,
            per_page=4,
            before=page.previous_before,
            **filters,
        )
        backwards.insert(0, [j.id for j in page.journalists])
    assert all(len(p) == 4 for p in forwards[:-1]) and 1 <= len(forwards[-1]) <= 4
    assert backwards == forwards  # the same pages, whichever way they were walked
    return [i for p in forwards for i in p], [i for p in backwards for i in p]


def test_keyset_pages_hold_every_journalist_once_in_name_order(session: Session) -> None:
    # Shared names make the address the tie-breaker; 15 journalists make four pages.
    people = [
        f.journalist(session, email=f"desk{i:02d}@paper.example", name=["Ana", "Bo", "Cy"][i % 3])
        for i in range(15)
    ]
    climate = f.beat(session, "Climate")
    for person in people[::2]:
        subscribe(session, person, [climate])
    session.flush()
    expected = [j.id for j in sorted(people, key=lambda j: (j.name, j.email_normalized))]
    forwards, _ = _walk(session)
    assert forwards == expected
    filtered, _ = _walk(session, beat_id=climate.id)
    assert filtered == [i for i in expected if i in {p.id for p in people[::2]}]
    first = services.search_journalists(session, per_page=4)
    assert (first.total, first.total_is_estimate, first.previous_before) == (15, False, None)
    # A cursor whose journalist is gone starts the list again.
    assert [j.id for j in services.search_journalists(session, after=10**9).journalists][:1] == (
        expected[:1]
    )


def test_the_total_is_counted_up_to_a_limit_then_labelled_an_estimate(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "EXACT_TOTAL_LIMIT", 3)
    for i in range(5):
        f.journalist(session, email=f"many{i}@paper.example", name=f"Many {i}")
    session.flush()
    page = services.search_journalists(session, per_page=2)
    assert page.total_is_estimate and page.total >= 3
    assert page.total_text.startswith(("about", "more than"))
    small = services.search_journalists(session, q="many1")
    assert (small.total, small.total_is_estimate, small.total_text) == (1, False, "1 found")


def test_the_list_page_links_to_the_next_and_previous_pages(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    for i in range(60):
        f.journalist(session, email=f"walk{i:02d}@paper.example", name=f"Walker {i:02d}")
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    first = client.get("/staff/audience/journalists?q=walk").get_data(as_text=True)
    assert "60 found" in first and "Walker 00" in first and "Walker 50" not in first
    link = re.search(r'rel="next" href="([^"]+)"', first)
    assert link is not None and "q=walk" in link[1] and "after=" in link[1]
    second = client.get(link[1].replace("&amp;", "&")).get_data(as_text=True)
    assert "Walker 50" in second and "Walker 49" not in second and 'rel="next"' not in second
    back = re.search(r'rel="prev" href="([^"]+)"', second)
    assert back is not None
    again = client.get(back[1].replace("&amp;", "&")).get_data(as_text=True)
    assert "Walker 00" in again and "Walker 49" in again and 'rel="prev"' not in again
