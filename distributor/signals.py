"""What one package tells the others, as blinker signals (Flask ships blinker).

The package where a thing happens sends the signal; every package that holds something about
it connects its own receiver in its ``handlers.connect()`` (as indico's ``core/signals``), so
erasing or merging a journalist never reaches into delivery or bounces, and a release mail
never imports the embargo room. Signals are sent inside the sender's transaction: receivers
take the ``session`` they are given, may flush and never commit.

The receivers are connected by the app factory (web and workers alike) and, failing that, on
the first signal sent in the process (a CLI command, a script, a test calling a service): an
erasure must never go out without the packages that have to forget the person.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blinker import NamedSignal

# The modules whose ``connect()`` connects a package's receivers; one line per package.
RECEIVER_MODULES = (
    "distributor.delivery.handlers",
    "distributor.bounces.handlers",
    "distributor.embargo.handlers",
    "distributor.notifications.handlers",
    "distributor.tracking.handlers",
)

_wiring = threading.Lock()
_wired = False


def connect_receivers() -> None:
    """Connect every package's receivers (idempotent: blinker keeps one connection each)."""
    global _wired
    if _wired:
        return
    with _wiring:
        if _wired:
            return
        for name in RECEIVER_MODULES:
            importlib.import_module(name).connect()
        _wired = True


class _Signal(NamedSignal):
    """A signal that makes sure the receivers are connected before its first send."""

    def send(self, *args: Any, **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
        connect_receivers()
        return super().send(*args, **kwargs)


# -- audience --------------------------------------------------------------------------------

# sender: the kept journalist's id; kwargs: session, merged_id. Sent while the duplicate still
# exists, before its row is deleted: each receiver moves what it holds of the duplicate to the
# kept record. A receiver that moves deliveries returns how many (the merge log counts them).
journalists_merged = _Signal("journalists-merged")

# sender: the journalist's id; kwargs: session, address (lower-cased), email. Sent before the
# journalist's row is deleted: each receiver forgets the person in what it holds (GDPR Art. 17).
journalist_erased = _Signal("journalist-erased")

# sender: the journalist's id; kwargs: session. Receivers return a dict of sections for the
# journalist's own download of their data (GDPR Art. 15 and 20), or None.
personal_data_requested = _Signal("personal-data-requested")


# -- releases --------------------------------------------------------------------------------

# sender: the Release; kwargs: session, from_status, to_status, by, comment. Sent by the
# release workflow after every status move, in the move's transaction.
release_moved = _Signal("release-moved")


# -- delivery --------------------------------------------------------------------------------

# sender: the Release; kwargs: session, settings. Sent once when a release mail is compiled;
# a receiver (the embargo room) may answer with a ``RoomLinks``: then each recipient's mail
# carries their personal room link instead of the public URLs.
compiling_release = _Signal("compiling-release")

# sender: the release id; kwargs: session, send_id, now. Sent after a send has frozen its
# audience, in the same transaction.
recipients_frozen = _Signal("recipients-frozen")

# sender: the release id; kwargs: session, settings, urls. Sent once when a release mail is
# compiled with tracking on; the tracking package answers with a ``LinkTracking``.
tracking_links = _Signal("tracking-links")


@dataclass(frozen=True)
class RoomLinks:
    """An embargoed release's mail links to each journalist's personal room."""

    url_for: Callable[[int], str]  # journalist id -> personal room URL
    requires_terms: bool  # the mail carries the summary and the link, not the full text
    terms_summary: str


@dataclass(frozen=True)
class LinkTracking:
    """A release's tracked links and how to write its pixel and click URLs for one token."""

    link_ids: dict[str, int]  # url -> tracked link id
    pixel_url: Callable[[str], str]  # token -> open pixel URL
    click_url: Callable[[str, int], str]  # token, link id -> click redirect URL
