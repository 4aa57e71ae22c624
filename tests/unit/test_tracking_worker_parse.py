"""What the gunicorn worker's event loop answers itself, and what it leaves to gunicorn."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from distributor.organisation.services import ensure_organisation
from distributor.settings import Settings
from distributor.tracking.fastpath import Tracker, get_tracker
from distributor.tracking.worker import parse_tracked_request

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _request(line: str, *fields: str) -> bytes:
    return ("\r\n".join([line, "Host: news.example", *fields]) + "\r\n\r\n").encode("latin-1")


@pytest.fixture()
def tracker(app: Flask) -> Tracker:
    return get_tracker(app)


def test_a_plain_pixel_fetch_is_taken_with_its_event(tracker: Tracker) -> None:
    data = _request("GET /t/o/Abc_12-x.y=.gif HTTP/1.1", f"User-Agent: {UA}", "Accept: */*")
    request = parse_tracked_request(data, tracker)
    assert request is not None
    assert (request.size, request.head, request.close, request.url) == (
        len(data),
        False,
        False,
        None,
    )
    event = request.event
    assert event is not None
    assert (event.kind, event.token, event.link_id, event.method, event.user_agent) == (
        "open",
        "Abc_12-x.y=",
        None,
        "GET",
        UA,
    )


def test_head_and_connection_close_are_honoured(tracker: Tracker) -> None:
    request = parse_tracked_request(
        _request("HEAD /t/o/tok.gif HTTP/1.1", "Connection: Close", "User-Agent:Mozilla/5.0"),
        tracker,
    )
    assert request is not None and request.head and request.close
    assert request.event is not None
    assert (request.event.method, request.event.user_agent) == ("HEAD", "Mozilla/5.0")


@pytest.mark.parametrize(
    "data",
    [
        _request("GET /t/o/tok.gif HTTP/1.1") + _request("GET /t/o/tok.gif HTTP/1.1"),  # pipelined
        _request("GET /t/o/tok.gif HTTP/1.1")[:-2],  # not all there yet
        _request("GET /t/o/tok.gif HTTP/1.1", "Content-Length: 5") + b"hello",
        _request("GET /t/o/tok.gif HTTP/1.1", "Content-Length: 0"),
        _request("GET /t/o/tok.gif HTTP/1.1", "Transfer-Encoding: chunked"),
        _request("GET /t/o/tok.gif HTTP/1.1", "Upgrade: h2c", "Connection: Upgrade"),
        _request("GET /t/o/tok.gif HTTP/1.1", "Expect: 100-continue"),
        _request("GET /t/o/tok.gif HTTP/1.1", "User-Agent: a", " folded"),  # obs-fold
        _request("GET /t/o/tok.gif HTTP/1.1", "User-Agent : a"),  # space before the colon
        _request("GET /t/o/tok.gif HTTP/1.1", "no colon"),
        _request("GET /t/o/tok.gif HTTP/1.1", "X-A: 1\nX-B: 2"),  # a bare LF
        _request("GET /t/o/tok.gif HTTP/1.1", "User-Agent: a\x00b"),  # PostgreSQL refuses NUL
        _request("GET /t/o/tok.gif HTTP/1.1", "User-Agent: a\x7fb"),
        _request("GET /t/o/tok.gif?x=1 HTTP/1.1"),
        _request("GET /t/o/t%41k.gif HTTP/1.1"),
        _request("GET /t/o/tok.gif HTTP/1.0"),
        _request("POST /t/o/tok.gif HTTP/1.1"),
        _request("GET /t/o/a/b.gif HTTP/1.1"),
        _request("GET /t/o/" + "x" * 65 + ".gif HTTP/1.1"),
        _request("GET /staff/ HTTP/1.1"),
        _request("GET /t/c/tok/1 HTTP/1.1"),  # a click whose URL is not cached yet
        b"",
    ],
)
def test_anything_else_is_left_to_gunicorn(tracker: Tracker, data: bytes) -> None:
    assert parse_tracked_request(data, tracker) is None


def test_a_click_is_taken_once_its_url_is_cached(tracker: Tracker) -> None:
    data = _request("GET /t/c/tok/7 HTTP/1.1", f"User-Agent: {UA}")
    assert parse_tracked_request(data, tracker) is None
    tracker.click_cache.put(("tok", 7), "https://harbourlight.example/story")
    request = parse_tracked_request(data, tracker)
    assert request is not None and request.url == "https://harbourlight.example/story"
    assert request.event is not None
    assert (request.event.kind, request.event.token, request.event.link_id) == ("click", "tok", 7)


def test_with_tracking_off_the_pixel_is_answered_and_nothing_recorded(
    app: Flask, session: Session, settings: Settings
) -> None:
    ensure_organisation(session, settings).is_tracking_enabled = False
    session.flush()
    request = parse_tracked_request(_request("GET /t/o/tok.gif HTTP/1.1"), get_tracker(app))
    assert request is not None and request.event is None
