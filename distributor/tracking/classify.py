"""Telling machines from people, one event at a time and for a whole message at once.

Rules (see STANDARDS.md, "Honest engagement numbers"):

Machine opens
- Apple Mail Privacy Protection fetches every remote image through Apple's proxies as soon as a
  message lands, read or not. The proxy sends the bare user agent ``Mozilla/5.0`` (no platform,
  no engine), which no real mail client sends; that is the signature we use, since we keep no
  IP address to match against Apple's published egress ranges.
- Image proxies of webmail providers (``GoogleImageProxy`` via ggpht.com, ``YahooMailProxy``)
  fetch and cache: the fetch says nothing reliable about a person reading.
- Any fetch within ``MACHINE_WINDOW`` of ``sent_at``: nobody reads a release that fast; security
  gateways and pre-fetchers do.
- HEAD requests and scanner user agents (below).

Bot clicks
- HEAD requests (link checkers look without fetching).
- Scanner user agents: Microsoft Safe Links, Proofpoint, Mimecast, Barracuda, generic HTTP
  libraries, headless browsers, crawlers and link-preview bots.
- Clicks within ``MACHINE_WINDOW`` of ``sent_at``.
- Every link of a message clicked within ``ALL_LINKS_WINDOW`` of each other (decided at flush
  time, when the whole picture of the delivery is known).

A human click also counts as a human open (the reports do that when they count openers).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

MACHINE_WINDOW = dt.timedelta(seconds=10)
ALL_LINKS_WINDOW = dt.timedelta(seconds=5)
# A message with one link cannot show the "all at once" pattern; with two or more it can.
ALL_LINKS_MINIMUM = 2

APPLE_MPP = "apple_mpp"
IMAGE_PROXY = "image_proxy"
EARLY = "early"
HEAD = "head"
SCANNER_UA = "scanner_ua"
EMPTY_UA = "empty_ua"
ALL_LINKS = "all_links"

_APPLE_PROXY_UA = re.compile(r"^Mozilla/5\.0$")
_IMAGE_PROXY_UA = re.compile(r"GoogleImageProxy|YahooMailProxy|ggpht\.com", re.IGNORECASE)
_SCANNER_UA = re.compile(
    r"bot\b|bot/|crawler|spider|scanner|preview|safelinks|safe links|proofpoint|mimecast|"
    r"barracuda|symantec|messagelabs|trendmicro|trend micro|sophos|fireeye|forcepoint|"
    r"cisco|ironport|fortinet|zscaler|urlscan|virustotal|headlesschrome|phantomjs|"
    r"python-requests|python-urllib|aiohttp|httpx|go-http-client|java/|okhttp|libwww|"
    r"wget|curl/|facebookexternalhit|slackbot|whatsapp|skypeuripreview|bingpreview|"
    r"microsoft office|ms-office|outlook-ios-linkcheck|googlebot|yahoo! slurp",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    is_machine: bool
    reason: str = ""


HUMAN = Verdict(False, "")


def classify_open(
    *, user_agent: str, method: str, occurred_at: dt.datetime, sent_at: dt.datetime | None
) -> Verdict:
    """Whether one pixel fetch was a person reading or a machine fetching."""
    ua = user_agent.strip()
    if method.upper() == "HEAD":
        return Verdict(True, HEAD)
    if _APPLE_PROXY_UA.match(ua):
        return Verdict(True, APPLE_MPP)
    if _IMAGE_PROXY_UA.search(ua):
        return Verdict(True, IMAGE_PROXY)
    if not ua:
        return Verdict(True, EMPTY_UA)
    if _SCANNER_UA.search(ua):
        return Verdict(True, SCANNER_UA)
    if _is_early(occurred_at, sent_at):
        return Verdict(True, EARLY)
    return HUMAN


def classify_click(
    *, user_agent: str, method: str, occurred_at: dt.datetime, sent_at: dt.datetime | None
) -> Verdict:
    """Whether one click, on its own, was a person or a link scanner."""
    ua = user_agent.strip()
    if method.upper() == "HEAD":
        return Verdict(True, HEAD)
    if not ua:
        return Verdict(True, EMPTY_UA)
    if _SCANNER_UA.search(ua):
        return Verdict(True, SCANNER_UA)
    if _is_early(occurred_at, sent_at):
        return Verdict(True, EARLY)
    return HUMAN


def _is_early(occurred_at: dt.datetime, sent_at: dt.datetime | None) -> bool:
    return sent_at is not None and occurred_at - sent_at < MACHINE_WINDOW


@dataclass(frozen=True)
class ClickSeen:
    event_id: int
    link_id: int | None
    occurred_at: dt.datetime


def all_links_burst(clicks: Sequence[ClickSeen], link_count: int) -> set[int]:
    """Ids of clicks that belong to a burst touching every link of the message at once."""
    if link_count < ALL_LINKS_MINIMUM:
        return set()
    ordered = sorted(clicks, key=lambda c: c.occurred_at)
    flagged: set[int] = set()
    start = 0
    for end in range(len(ordered)):
        while ordered[end].occurred_at - ordered[start].occurred_at > ALL_LINKS_WINDOW:
            start += 1
        window = ordered[start : end + 1]
        if len({c.link_id for c in window if c.link_id is not None}) >= link_count:
            flagged.update(c.event_id for c in window)
    return flagged
