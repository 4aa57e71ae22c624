"""What the delivery package tells other modules, and what it asks them (blinker signals).

``compiling_release`` is sent once when a release mail is compiled; a receiver (the embargo
room) may answer with a ``RoomLinks``: then each recipient's mail carries their personal room
link instead of the public URLs. ``recipients_frozen`` is sent after a send has frozen its
audience, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from blinker import Namespace

_signals = Namespace()

# sender: the Release; kwargs: session, settings. Receivers return RoomLinks or None.
compiling_release = _signals.signal("compiling-release")
# sender: the release id; kwargs: session, send_id, now.
recipients_frozen = _signals.signal("recipients-frozen")


@dataclass(frozen=True)
class RoomLinks:
    """An embargoed release's mail links to each journalist's personal room."""

    url_for: Callable[[int], str]  # journalist id -> personal room URL
    requires_terms: bool  # the mail carries the summary and the link, not the full text
    terms_summary: str
