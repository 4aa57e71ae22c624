"""What the audience package tells other modules (blinker signals); each connects its own."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent inside the merge's transaction, before the duplicate's row is deleted.
# sender: the kept journalist's id; kwargs: session, merged_id.
journalist_merging = _signals.signal("journalist-merging")
