"""Machines are told from people, event by event and for a whole message."""

from __future__ import annotations

import datetime as dt

from distributor.tracking import classify
from distributor.tracking.classify import ClickSeen, all_links_burst, classify_click, classify_open

SENT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
LATER = SENT + dt.timedelta(hours=2)
CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/131 Safari/537.36"
)


def test_a_person_reading_later_is_human() -> None:
    verdict = classify_open(user_agent=CHROME, method="GET", occurred_at=LATER, sent_at=SENT)
    assert verdict == classify.HUMAN


def test_apple_privacy_proxy_and_gmail_proxy_are_machine_opens() -> None:
    apple = classify_open(user_agent="Mozilla/5.0", method="GET", occurred_at=LATER, sent_at=SENT)
    gmail = classify_open(
        user_agent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        method="GET",
        occurred_at=LATER,
        sent_at=SENT,
    )
    assert (apple.is_machine, apple.reason) == (True, classify.APPLE_MPP)
    assert (gmail.is_machine, gmail.reason) == (True, classify.IMAGE_PROXY)


def test_fetch_within_seconds_of_delivery_is_a_machine() -> None:
    early = SENT + dt.timedelta(seconds=3)
    assert classify_open(
        user_agent=CHROME, method="GET", occurred_at=early, sent_at=SENT
    ).reason == (classify.EARLY)
    assert classify_click(
        user_agent=CHROME, method="GET", occurred_at=early, sent_at=SENT
    ).reason == (classify.EARLY)


def test_head_requests_and_scanner_agents_are_bot_clicks() -> None:
    head = classify_click(user_agent=CHROME, method="HEAD", occurred_at=LATER, sent_at=SENT)
    for agent in (
        "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
        "python-requests/2.32",
        "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0",
        "",
    ):
        verdict = classify_click(user_agent=agent, method="GET", occurred_at=LATER, sent_at=SENT)
        assert verdict.is_machine, agent
    assert head.reason == classify.HEAD
    human = classify_click(user_agent=CHROME, method="GET", occurred_at=LATER, sent_at=SENT)
    assert not human.is_machine


def test_every_link_at_once_is_a_burst_but_a_reader_browsing_is_not() -> None:
    burst = [ClickSeen(i, i, LATER + dt.timedelta(milliseconds=300 * i)) for i in (1, 2, 3)]
    assert all_links_burst(burst, link_count=3) == {1, 2, 3}
    browsing = [ClickSeen(i, i, LATER + dt.timedelta(minutes=i)) for i in (1, 2, 3)]
    assert all_links_burst(browsing, link_count=3) == set()
    # One link in the message: nothing to compare with.
    assert all_links_burst([ClickSeen(1, 1, LATER)], link_count=1) == set()
