"""Policy: hard bounces and complaints suppress, soft ones score, 5.7.x flags; all idempotent."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.audience.models import Suppression, SuppressionReason
from distributor.audience.services import find_suppression, is_suppressed
from distributor.bounces import parsing
from distributor.bounces.models import Bounce, BounceKind, Classification, InboundMessage
from distributor.bounces.parsing import FailedRecipient
from distributor.bounces.services import (
    process_pending,
    purge_raw,
    receive_message,
    store_inbound,
)
from distributor.db import utcnow
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


def test_a_hard_bounce_suppresses_the_address(session: Session, settings: Settings) -> None:
    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")

    receive_message(session, settings, source="smtp", raw=sample("postfix_user_unknown.eml"))

    suppression = find_suppression(session, address)
    assert suppression is not None
    assert suppression.reason is SuppressionReason.HARD_BOUNCE
    assert "5.1.1" in suppression.note
    assert session.scalars(select(Bounce)).one().is_suppressing


def test_a_complaint_suppresses_the_address(session: Session, settings: Settings) -> None:
    address = "lena.voss@yahoo.com"
    delivery(session, email=address, token="yah3Mn7Bv5Cx")

    receive_message(session, settings, source="smtp", raw=sample("yahoo_arf_complaint.eml"))

    suppression = find_suppression(session, address)
    assert suppression is not None
    assert suppression.reason is SuppressionReason.COMPLAINT


def test_a_policy_rejection_flags_the_delivery_and_suppresses_nothing(
    session: Session, settings: Settings
) -> None:
    address = "kofi.mensah@gmail.com"
    d = delivery(session, email=address, token="gdm4Xc8Vb2Nm")

    receive_message(session, settings, source="smtp", raw=sample("gmail_dmarc_policy.eml"))

    session.refresh(d)
    assert d.is_policy_rejection is True
    assert not is_suppressed(session, address)


def test_soft_bounces_below_the_threshold_do_not_suppress(
    session: Session, settings: Settings
) -> None:
    first = delivery(session, email=SOFT_ADDRESS, token="softTok00001")
    second = delivery(session, email="", token="softTok00002", journalist=first.journalist)

    for n, d in enumerate((first, second)):
        receive_message(session, settings, source="smtp", raw=soft_bounce_for(d, n))

    assert _bounces(session) == 2
    assert settings.bounce_soft_threshold == 3
    assert not is_suppressed(session, SOFT_ADDRESS)


def test_soft_bounces_reaching_the_threshold_suppress(session: Session, settings: Settings) -> None:
    first = delivery(session, email=SOFT_ADDRESS, token="softTok00001")
    others = [
        delivery(session, email="", token=f"softTok0000{n}", journalist=first.journalist)
        for n in (2, 3)
    ]

    for n, d in enumerate([first, *others]):
        receive_message(session, settings, source="smtp", raw=soft_bounce_for(d, n))

    suppression = find_suppression(session, SOFT_ADDRESS)
    assert suppression is not None
    assert suppression.reason.value == "soft_bounce"
    assert "3 bounced messages within 7 days" in suppression.note
    assert [b.is_suppressing for b in session.scalars(select(Bounce).order_by(Bounce.id))] == [
        False,
        False,
        True,
    ]


def test_repeated_notices_about_one_message_count_once(
    session: Session, settings: Settings
) -> None:
    d = delivery(session, email=SOFT_ADDRESS, token="softTok00001")

    for n in range(4):
        receive_message(session, settings, source="smtp", raw=soft_bounce_for(d, n))

    assert _bounces(session) == 4
    assert not is_suppressed(session, SOFT_ADDRESS)


def test_soft_bounces_outside_the_window_do_not_count(session: Session, settings: Settings) -> None:
    first = delivery(session, email=SOFT_ADDRESS, token="softTok00001")
    others = [
        delivery(session, email="", token=f"softTok0000{n}", journalist=first.journalist)
        for n in (2, 3)
    ]
    old = receive_message(session, settings, source="smtp", raw=soft_bounce_for(first, 0))
    for bounce in session.scalars(select(Bounce).where(Bounce.inbound_message_id == old.id)):
        bounce.received_at = utcnow() - dt.timedelta(days=settings.bounce_soft_window_days + 1)
    session.flush()

    for n, d in enumerate(others, start=1):
        receive_message(session, settings, source="smtp", raw=soft_bounce_for(d, n))

    assert not is_suppressed(session, SOFT_ADDRESS)


def test_the_threshold_and_window_are_settings(session: Session, settings: Settings) -> None:
    strict = dataclasses.replace(settings, bounce_soft_threshold=1)
    d = delivery(session, email=SOFT_ADDRESS, token="softTok00001")

    receive_message(session, strict, source="smtp", raw=soft_bounce_for(d, 0))

    assert is_suppressed(session, SOFT_ADDRESS)


def test_the_same_dsn_twice_changes_nothing_the_second_time(
    session: Session, settings: Settings
) -> None:
    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")
    raw = sample("postfix_user_unknown.eml")

    first = receive_message(session, settings, source="smtp", raw=raw)
    suppression = find_suppression(session, address)
    assert suppression is not None
    before = (suppression.id, suppression.created_at, suppression.note)
    # The same report again, once by SMTP and once found in the polled mailbox.
    again = receive_message(session, settings, source="smtp", raw=raw)
    polled = receive_message(session, settings, source="imap", raw=raw.replace(b"\n", b"\r\n"))

    assert first.id == again.id == polled.id
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert _bounces(session) == 1
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    after = find_suppression(session, address)
    assert after is not None
    assert (after.id, after.created_at, after.note) == before


def test_a_message_without_message_id_is_deduplicated_by_content(
    session: Session, settings: Settings
) -> None:
    raw = b"From: someone@example.org\r\nSubject: hello\r\n\r\nNo id here.\r\n"

    first = receive_message(session, settings, source="smtp", raw=raw)
    second = receive_message(session, settings, source="smtp", raw=raw)

    assert first.id == second.id
    assert first.dedupe_key.startswith("sha256:")


def test_an_existing_do_not_contact_entry_is_not_overwritten(
    session: Session, settings: Settings
) -> None:
    from distributor.audience.services import suppress

    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")
    suppress(session, address, SuppressionReason.DO_NOT_CONTACT, note="asked us by phone")

    receive_message(session, settings, source="smtp", raw=sample("postfix_user_unknown.eml"))

    suppression = find_suppression(session, address)
    assert suppression is not None
    assert suppression.reason is SuppressionReason.DO_NOT_CONTACT


def test_stored_but_unprocessed_messages_are_processed_by_the_sweep(
    session: Session, settings: Settings
) -> None:
    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")
    inbound, created = store_inbound(
        session,
        source="smtp",
        raw=sample("postfix_user_unknown.eml"),
        envelope_to="bounces+pfx7Qk2LmN9v@bounces.harbourlight.example",
    )
    assert created and inbound.classification is Classification.PENDING

    assert process_pending(session, settings) == 0  # too fresh: the receiver may be on it
    later = utcnow() + dt.timedelta(minutes=5)
    assert process_pending(session, settings, now=later) == 1

    assert inbound.classification is Classification.BOUNCE
    assert is_suppressed(session, address)
    assert process_pending(session, settings, now=later) == 0


def test_raw_messages_are_purged_after_the_retention_period(
    session: Session, settings: Settings
) -> None:
    old = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))
    new = receive_message(session, settings, source="smtp", raw=sample("vacation_rfc3834.eml"))
    old.received_at = utcnow() - dt.timedelta(days=settings.bounce_raw_retention_days + 1)
    session.flush()

    assert purge_raw(session, settings) == 1

    session.expire_all()
    old_row = session.get(InboundMessage, old.id)
    new_row = session.get(InboundMessage, new.id)
    assert old_row is not None and new_row is not None
    assert old_row.raw is None and old_row.raw_purged_at is not None
    assert old_row.classification is Classification.UNRECOGNISED  # the verdict stays
    assert new_row.raw == sample("vacation_rfc3834.eml")


def test_a_message_that_cannot_be_processed_is_parked_not_retried_forever(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributor.bounces import services

    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")
    poison, _ = store_inbound(session, source="smtp", raw=sample("human_reply.eml"))
    good, _ = store_inbound(session, source="smtp", raw=sample("postfix_user_unknown.eml"))
    real = parsing.parse_message  # what the services module imported

    def parse(raw: bytes, **kwargs: Any) -> object:
        if b"full survey data" in raw:
            raise UnicodeError("broken beyond repair")
        return real(raw, **kwargs)

    monkeypatch.setattr(services, "parse_message", parse)
    later = utcnow() + dt.timedelta(minutes=5)

    assert process_pending(session, settings, now=later) == 2

    assert poison.classification is Classification.UNRECOGNISED
    assert "processing failed: UnicodeError" in poison.summary
    assert poison.raw is not None
    assert good.classification is Classification.BOUNCE
    assert is_suppressed(session, address)
    assert process_pending(session, settings, now=later) == 0


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


def test_erasure_blanks_the_address_on_bounces_and_complaints(
    session: Session, settings: Settings
) -> None:
    from distributor.bounces.models import Complaint
    from distributor.bounces.services import forget_address

    delivery(session, email="m.okafor@northwind-news.example", token="pfx7Qk2LmN9v")
    receive_message(session, settings, source="smtp", raw=sample("postfix_user_unknown.eml"))

    assert forget_address(session, "M.Okafor@northwind-news.example") == 1

    session.expire_all()
    assert [b.email for b in session.scalars(select(Bounce))] == [None]
    assert session.scalars(select(Complaint)).all() == []
    inbound = session.scalars(select(InboundMessage)).one()
    assert inbound.raw is None and inbound.summary == "(erased)"


def test_erasing_a_journalist_also_forgets_their_bounces(
    session: Session, settings: Settings
) -> None:
    from distributor.audience.preferences import erase_journalist

    d = delivery(session, email="m.okafor@northwind-news.example", token="pfx7Qk2LmN9v")
    receive_message(session, settings, source="smtp", raw=sample("postfix_user_unknown.eml"))
    assert d.journalist_id is not None
    assert erase_journalist(session, d.journalist_id)

    session.expire_all()
    assert [b.email for b in session.scalars(select(Bounce))] == [None]
    assert is_suppressed(session, "m.okafor@northwind-news.example")


def test_mail_to_the_mailto_unsubscribe_address_unsubscribes_at_once(
    session: Session, settings: Settings
) -> None:
    from distributor.audience.models import Journalist, SubscriptionStatus
    from distributor.bounces.services import receive_message

    d = delivery(session, email="r.ahmed@tidewater-post.example", token="unsubTok3n9")
    raw = (
        b"From: r.ahmed@tidewater-post.example\r\nTo: unsubscribe+unsubTok3n9@"
        + settings.bounce_domain.encode()
        + b"\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
    )
    inbound = receive_message(
        session,
        settings,
        source="smtp",
        raw=raw,
        envelope_from="r.ahmed@tidewater-post.example",
        envelope_to=f"unsubscribe+unsubTok3n9@{settings.bounce_domain}",
    )
    assert inbound.classification is Classification.UNSUBSCRIBE
    assert is_suppressed(session, "r.ahmed@tidewater-post.example")
    journalist = session.get(Journalist, d.journalist_id)
    assert journalist is not None
    assert all(s.status is SubscriptionStatus.UNSUBSCRIBED for s in journalist.subscriptions)
    # A bounce to the ordinary VERP address is still a bounce, not an unsubscribe.
    assert session.scalar(select(func.count()).select_from(Bounce)) == 0


def test_unsubscribe_mail_with_an_unknown_token_changes_nothing(
    session: Session, settings: Settings
) -> None:
    from distributor.bounces.services import receive_message

    inbound = receive_message(
        session,
        settings,
        source="smtp",
        raw=b"Subject: unsubscribe\r\n\r\nplease\r\n",
        envelope_to=f"unsubscribe+nosuchtoken@{settings.bounce_domain}",
    )
    assert inbound.classification is Classification.UNSUBSCRIBE
    assert "no matching delivery" in inbound.summary
