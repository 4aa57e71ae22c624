"""Policy: hard bounces and complaints suppress, soft ones score, 5.7.x flags; all idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.audience.services import is_suppressed
from distributor.bounces.models import Bounce, BounceKind
from distributor.bounces.parsing import FailedRecipient
from distributor.bounces.services import (
    receive_message,
)
from distributor.delivery.models import Delivery
from distributor.mail.outcomes import classify_report
from distributor.settings import Settings
from tests.support.bounces import delivery, sample

SOFT_ADDRESS = "d.osei@marsh-radio.example"


def soft_bounce_for(d: Delivery, n: int) -> bytes:
    """The Sendmail "gave up after 5 days" DSN, re-addressed to delivery ``d``."""
    raw = sample("sendmail_expired_soft.eml")
    raw = raw.replace(b"sxp2Ws7Ed3Rf", d.verp_token.encode())
    return raw.replace(b"5AT9U0Qx054321@", f"soft{n}-{d.id}@".encode())


def _bounces(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Bounce)) or 0)


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        ("5.1.1", "", BounceKind.HARD),
        ("5.1.2", "", BounceKind.HARD),
        ("5.1.10", "", BounceKind.HARD),
        ("5.2.1", "", BounceKind.HARD),
        ("5.2.2", "", BounceKind.SOFT),  # mailbox full
        ("4.2.2", "", BounceKind.SOFT),
        ("5.4.4", "", BounceKind.SOFT),
        ("5.0.0", "", BounceKind.SOFT),
        ("", "", BounceKind.SOFT),
        ("5.7.1", "", BounceKind.POLICY),
        ("5.7.26", "", BounceKind.POLICY),
        ("5.1.8", "", BounceKind.POLICY),  # the *sender's* domain was refused
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", BounceKind.MESSAGE),
        # Clear "no such user" words under a vague or missing code are hard.
        ("5.3.0", "553 5.3.0 <x@example.org>... Addressee unknown", BounceKind.HARD),
        ("", "550 Unknown user: x@example.org", BounceKind.HARD),
        ("5.0.0", "User x (x@example.org) not listed in Domino Directory", BounceKind.HARD),
        ("", "554 delivery error: dd This user doesn't have a yahoo.com account", BounceKind.HARD),
        ("", "550 Sender address rejected: Domain not found", BounceKind.POLICY),
    ],
)
def test_the_kind_of_a_failure_comes_from_the_outcome_authority(
    status: str, diagnostic: str, kind: BounceKind
) -> None:
    failed = FailedRecipient("x@example.org", "failed", status, diagnostic)
    assert failed.kind is kind
    assert failed.kind is classify_report(status, diagnostic).kind


def test_a_hard_bounce_tied_only_by_its_address_scores_instead_of_suppressing(
    session: Session, settings: Settings
) -> None:
    # Anyone can mail the bounce domain a DSN naming any journalist: without our token or
    # Message-ID it must not take an address off the list by itself.
    address = "m.okafor@northwind-news.example"
    d = delivery(
        session, email=address, token="theRealToken1", message_id="<real@harbourlight.example>"
    )
    forged = sample("postfix_user_unknown.eml").replace(b"pfx7Qk2LmN9v", b"guessedToken")

    inbound = receive_message(session, settings, source="smtp", raw=forged)

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert (bounce.delivery_id, bounce.matched_by, bounce.kind) == (
        d.id,
        "address",
        BounceKind.HARD,
    )
    assert bounce.is_suppressing is False
    assert not is_suppressed(session, address)


def test_an_arf_report_tied_only_by_its_address_does_not_suppress(
    session: Session, settings: Settings
) -> None:
    address = "lena.voss@yahoo.com"
    delivery(session, email=address, token="theRealToken2")
    forged = sample("yahoo_arf_complaint.eml").replace(b"yah3Mn7Bv5Cx", b"guessedToken")

    receive_message(session, settings, source="smtp", raw=forged)

    assert not is_suppressed(session, address)


@pytest.mark.parametrize(
    ("status_field", "diagnostic", "expected"),
    [
        ("5.0.0", "smtp; 550 5.1.1 <x@example.org>: Recipient address rejected", "5.1.1"),
        ("", "550 5.7.1 Service unavailable; user unknown to our spam filter", "5.7.1"),
        ("", "554 delivery error: dd This user doesn't have a yahoo.com account", ""),
        ("4.4.7", "421 4.4.2 Connection timed out", "4.4.7"),
        ("", "", ""),
    ],
)
def test_status_codes_are_read_from_the_report_and_its_words(
    status_field: str, diagnostic: str, expected: str
) -> None:
    from distributor.bounces.parsing import best_status

    assert best_status(status_field, diagnostic) == expected
