"""What a send will do, restated before it starts, and the override a red checklist needs.

One click must never mail the whole audience: the send page leads to a confirmation that
names the audience, the embargo and every checklist item still marked "Fix"; those need an
explicit override, tied to the exact items shown, so a new problem appearing between the
confirmation and the click is not waved through by an old tick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from distributor.delivery.checklist import CheckItem, Checklist, CheckStatus
from distributor.delivery.services import AudienceBreakdown
from distributor.errors import DomainError
from distributor.releases.models import Release


class ConfirmationRequired(DomainError):
    status_code = 409


@dataclass(frozen=True)
class SendConfirmation:
    audience_total: int
    digest_total: int
    embargo_until: dt.datetime | None
    scheduled_for: dt.datetime | None
    red: list[CheckItem]
    warnings: list[CheckItem]

    @property
    def needs_override(self) -> bool:
        return bool(self.red)

    @property
    def override_token(self) -> str:
        """Names the red items acknowledged; empty when nothing needs overriding."""
        return override_token(self.red)


def override_token(red: list[CheckItem]) -> str:
    if not red:
        return ""
    labels = "\n".join(sorted(f"{i.label}:{i.detail}" for i in red))
    return hashlib.sha256(labels.encode("utf-8")).hexdigest()[:16]


def build_confirmation(
    *,
    release: Release,
    audience: AudienceBreakdown,
    checklist: Checklist,
    scheduled_for: dt.datetime | None = None,
) -> SendConfirmation:
    """Everything the confirmation page restates."""
    return SendConfirmation(
        audience_total=audience.total,
        digest_total=audience.digest,
        embargo_until=release.embargo_until,
        scheduled_for=scheduled_for,
        red=[i for i in checklist.items if i.status is CheckStatus.BAD],
        warnings=[
            i for i in checklist.items if i.status in (CheckStatus.WARN, CheckStatus.UNKNOWN)
        ],
    )


def check_confirmed(checklist: Checklist, *, confirmed: bool, override: str) -> None:
    """Refuse a send that skipped the confirmation or did not override today's red items."""
    if not confirmed:
        raise ConfirmationRequired("Confirm the send first: it restates what will happen.")
    red = [i for i in checklist.items if i.status is CheckStatus.BAD]
    if red and override != override_token(red):
        raise ConfirmationRequired(
            "The checklist has items marked Fix: "
            + ", ".join(i.label for i in red)
            + ". Tick the override on the confirmation to send anyway."
        )
