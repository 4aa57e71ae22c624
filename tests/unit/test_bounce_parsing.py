"""Every sample format is classified correctly and tied to the delivery it is about."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.audience.services import is_suppressed
from distributor.bounces.models import Bounce, BounceKind, Classification, Complaint, InboundMessage
from distributor.bounces.parsing import parse_message
from distributor.bounces.services import receive_message
from distributor.db import utcnow
from distributor.settings import Settings
from tests.support.bounces import FIXTURES, delivery, sample

DOMAIN = "bounces.harbourlight.example"

# file, failed address, VERP token, original Message-ID, kind, status, detector
BOUNCES = [
    (
        "postfix_user_unknown.eml",
        "m.okafor@northwind-news.example",
        "pfx7Qk2LmN9v",
        "<rel7.pfx@harbourlight.example>",
        BounceKind.HARD,
        "5.1.1",
        "rfc3464",
    ),
    (
        "exim_user_unknown.eml",
        "j.achterberg@estuary-post.example",
        "exm5Tg2Hk8Rw",
        "<rel7.exm@harbourlight.example>",
        BounceKind.HARD,
        "5.1.1",
        "flufl",
    ),
    (
        "exchange_o365_not_found.eml",
        "r.castellanos@shorelinegazette.example",
        "o365Wd4Kp7Ze2",
        "<rel7.o365@harbourlight.example>",
        BounceKind.HARD,
        "5.1.10",
        "rfc3464",
    ),
    (
        "exchange_legacy_ndr.eml",
        "i.farrow@tidewater-daily.example",
        "exl2Vb6Np3Qa",
        None,
        BounceKind.HARD,
        "",  # no code at all: its words say the mailbox does not exist
        "flufl",
    ),
    (
        "gmail_no_such_user.eml",
        "priya.raman@gmail.com",
        "gml9Ls3Df6Jk",
        "<rel7.gml@harbourlight.example>",
        BounceKind.HARD,
        "5.1.1",
        "rfc3464",
    ),
    (
        "gmail_dmarc_policy.eml",
        "kofi.mensah@gmail.com",
        "gdm4Xc8Vb2Nm",
        "<rel7.gdm@harbourlight.example>",
        BounceKind.POLICY,
        "5.7.26",
        "rfc3464",
    ),
    (
        "qmail_no_mailbox.eml",
        "h.delacroix@saltmarsh-herald.example",
        "qml6Rt1Yu4Io",
        "<rel7.qml@harbourlight.example>",
        BounceKind.HARD,
        "5.1.1",
        "flufl",
    ),
    (
        "yahoo_legacy_no_account.eml",
        "c.mbeki@yahoo.com",
        "yhl7Kj8Hg9Fd",
        "<rel7.yhl@harbourlight.example>",
        BounceKind.HARD,
        "",  # "554 ... This user doesn't have a yahoo.com account": hard in words
        "flufl",
    ),
    (
        "sendmail_host_unknown.eml",
        "a.whitcombe@fenland-courier-old.example",
        "snd8Gh5Jk1Lz",
        "<rel7.snd@harbourlight.example>",
        BounceKind.HARD,
        "5.1.2",
        "rfc3464",
    ),
    (
        "sendmail_expired_soft.eml",
        "d.osei@marsh-radio.example",
        "sxp2Ws7Ed3Rf",
        "<rel7.sxp@harbourlight.example>",
        BounceKind.SOFT,
        "4.4.7",
        "rfc3464",
    ),
]


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("name", "address", "token", "message_id", "kind", "status", "detector"),
    BOUNCES,
    ids=[b[0] for b in BOUNCES],
)
def test_bounce_formats_are_classified_and_tied_by_verp(
    session: Session,
    settings: Settings,
    name: str,
    address: str,
    token: str,
    message_id: str | None,
    kind: BounceKind,
    status: str,
    detector: str,
) -> None:
    d = delivery(session, email=address, token=token, message_id=message_id)

    inbound = receive_message(session, settings, source="imap", raw=sample(name))

    assert inbound.classification is Classification.BOUNCE
    assert inbound.summary.startswith(detector)
    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert bounce.delivery_id == d.id
    assert bounce.matched_by == "verp"
    assert bounce.email == address
    assert bounce.kind is kind
    assert bounce.status_code == status
    assert bounce.diagnostic
    assert inbound.raw == sample(name)


@pytest.mark.parametrize("name", [b[0] for b in BOUNCES if b[3]])
def test_without_a_token_the_original_message_id_ties_the_bounce(
    session: Session, settings: Settings, name: str
) -> None:
    _, address, _token, message_id, *_ = next(b for b in BOUNCES if b[0] == name)
    d = delivery(session, email=address, token="someOtherToken1", message_id=message_id)

    inbound = receive_message(session, settings, source="pop3", raw=sample(name))

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert (bounce.delivery_id, bounce.matched_by) == (d.id, "message-id")


def test_without_token_or_message_id_the_latest_delivery_to_the_address_ties_it(
    session: Session, settings: Settings
) -> None:
    address = "i.farrow@tidewater-daily.example"
    older = delivery(
        session, email=address, token="olderToken01", sent_at=utcnow() - dt.timedelta(days=3)
    )
    newer = delivery(
        session,
        email="ines.farrow.desk@example.org",
        token="newerToken01",
        journalist=older.journalist,
        sent_at=utcnow() - dt.timedelta(hours=2),
    )
    newer.email = address  # the same address, mailed again for a later release
    session.flush()

    inbound = receive_message(
        session, settings, source="imap", raw=sample("exchange_legacy_ndr.eml")
    )

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert (bounce.delivery_id, bounce.matched_by) == (newer.id, "address")


def test_a_bounce_nothing_ties_to_us_is_kept_but_suppresses_no_one(
    session: Session, settings: Settings
) -> None:
    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="unrelated001", sent_at=utcnow() - dt.timedelta(days=90))

    inbound = receive_message(
        session, settings, source="smtp", raw=sample("postfix_user_unknown.eml")
    )

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert bounce.delivery_id is None
    assert bounce.is_suppressing is False
    assert not is_suppressed(session, address)
    assert "no matching delivery" in inbound.summary


def test_a_delayed_dsn_is_a_warning_not_a_bounce(session: Session, settings: Settings) -> None:
    address = "t.lindqvist@coastal-times.example"
    delivery(session, email=address, token="pdl3Hw8sQe1x")

    inbound = receive_message(session, settings, source="smtp", raw=sample("postfix_delayed.eml"))

    assert inbound.classification is Classification.DELAY
    assert _count(session, Bounce) == 0
    assert not is_suppressed(session, address)


@pytest.mark.parametrize(
    ("name", "address", "token", "message_id", "matched_by", "user_agent"),
    [
        (
            "yahoo_arf_complaint.eml",
            "lena.voss@yahoo.com",
            "yah3Mn7Bv5Cx",
            "<rel7.yah@harbourlight.example>",
            "verp",
            "Yahoo!-Mail-Feedback/2.0",
        ),
        (
            # Microsoft's JMRP redacts the recipient: only the Message-ID ties it.
            "microsoft_arf_complaint.eml",
            "n.adeyemi@outlook.com",
            "msfToken0001",
            "<rel7.msf@harbourlight.example>",
            "message-id",
            "Hotmail FBL",
        ),
    ],
)
def test_arf_reports_are_complaints_tied_to_the_delivery(
    session: Session,
    settings: Settings,
    name: str,
    address: str,
    token: str,
    message_id: str,
    matched_by: str,
    user_agent: str,
) -> None:
    d = delivery(session, email=address, token=token, message_id=message_id)

    inbound = receive_message(session, settings, source="smtp", raw=sample(name))

    assert inbound.classification is Classification.COMPLAINT
    complaint = session.scalars(select(Complaint)).one()
    assert (complaint.delivery_id, complaint.matched_by) == (d.id, matched_by)
    assert complaint.email == address
    assert complaint.feedback_type == "abuse"
    assert complaint.user_agent == user_agent
    assert _count(session, Bounce) == 0


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("vacation_exchange_ooo.eml", "vac1Qa2Ws3Ed"),
        ("vacation_rfc3834.eml", "vcn5Rf6Tg7Yh"),
        ("vacation_x_autoreply.eml", "vxa8Uj9Ik0Ol"),
        ("vacation_encoded_subject.eml", "vde2Zx3Cv4Bn"),  # only its (RFC 2047) subject says so
    ],
)
def test_auto_replies_are_kept_and_ignored(
    session: Session, settings: Settings, name: str, token: str
) -> None:
    address = f"journalist-{token.lower()}@example.org"
    delivery(session, email=address, token=token)

    inbound = receive_message(session, settings, source="smtp", raw=sample(name))

    assert inbound.classification is Classification.AUTO_REPLY
    assert inbound.raw == sample(name)
    assert _count(session, Bounce) == 0
    assert _count(session, Complaint) == 0
    assert not is_suppressed(session, address)


def test_a_human_reply_is_not_mistaken_for_anything(session: Session, settings: Settings) -> None:
    inbound = receive_message(session, settings, source="smtp", raw=sample("human_reply.eml"))

    assert inbound.classification is Classification.UNRECOGNISED
    assert _count(session, Bounce) == _count(session, Complaint) == 0


def test_every_sample_is_covered_by_a_test() -> None:
    covered = {b[0] for b in BOUNCES} | {
        "postfix_delayed.eml",
        "yahoo_arf_complaint.eml",
        "microsoft_arf_complaint.eml",
        "vacation_exchange_ooo.eml",
        "vacation_rfc3834.eml",
        "vacation_x_autoreply.eml",
        "vacation_encoded_subject.eml",
        "human_reply.eml",
    }
    assert {p.name for p in FIXTURES.glob("*.eml")} == covered


def test_the_dsn_parser_reads_the_per_recipient_fields() -> None:
    report = parse_message(
        sample("postfix_user_unknown.eml"),
        envelope_to=["bounces+pfx7Qk2LmN9v@bounces.harbourlight.example"],
        bounce_domain=DOMAIN,
    )
    (failed,) = report.recipients
    assert failed.action == "failed"
    assert failed.remote_mta == "mx.northwind-news.example"
    assert "User unknown in virtual mailbox table" in failed.diagnostic
    assert report.verp_tokens == ["pfx7Qk2LmN9v"]
    assert report.original_message_ids == ["<rel7.pfx@harbourlight.example>"]


def test_the_envelope_token_wins_over_tokens_quoted_in_the_body() -> None:
    report = parse_message(
        sample("postfix_user_unknown.eml"),
        envelope_to=["bounces+envelopeTok1@BOUNCES.harbourlight.example"],
        bounce_domain=DOMAIN,
    )
    assert report.verp_tokens[0] == "envelopeTok1"


def test_a_stored_message_keeps_its_source(session: Session, settings: Settings) -> None:
    inbound = receive_message(session, settings, source="pop3", raw=sample("human_reply.eml"))
    assert session.get(InboundMessage, inbound.id).source == "pop3"


def test_a_digest_bounce_is_tied_through_the_digest_token(
    session: Session, settings: Settings
) -> None:
    from distributor.delivery.models import DigestMail

    address = "m.okafor@northwind-news.example"
    digest_id = "<digest.7.dgT0ken@harbourlight.example>"
    first = delivery(session, email=address, token="dlvToken0001", message_id=digest_id)
    second = delivery(
        session, email="", token="dlvToken0002", message_id=digest_id, journalist=first.journalist
    )
    session.add(
        DigestMail(
            journalist_id=first.journalist_id,
            digest_date=dt.date(2026, 11, 24),
            verp_token="digestTok001",
            message_id=digest_id,
        )
    )
    session.flush()
    raw = sample("postfix_user_unknown.eml").replace(b"pfx7Qk2LmN9v", b"digestTok001")

    inbound = receive_message(session, settings, source="smtp", raw=raw)

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert bounce.delivery_id in {first.id, second.id}
    assert bounce.matched_by == "verp"
    assert is_suppressed(session, address)


def test_a_bounce_in_an_unknown_charset_is_still_read() -> None:
    raw = (
        b"From: MAILER-DAEMON@relay.example\r\n"
        b"To: bounces+abcdefgh@bounces.harbourlight.example\r\n"
        b"Subject: Mail delivery failed\r\n"
        b"X-Failed-Recipients: someone@example.org\r\n"
        b"Content-Type: text/plain; charset=x-unheard-of\r\n\r\n"
        b"The following address(es) failed:\r\n\r\n  someone@example.org\r\n"
        b"    550 5.1.1 user unknown \xff\xfe\r\n"
    )
    report = parse_message(raw, envelope_to=[], bounce_domain=DOMAIN)
    assert report.classification is Classification.BOUNCE
    assert [(r.address, r.status) for r in report.recipients] == [("someone@example.org", "5.1.1")]


def test_a_message_too_big_is_stored_as_such_and_leaves_the_address_alone(
    session: Session, settings: Settings
) -> None:
    address = "m.okafor@northwind-news.example"
    delivery(session, email=address, token="pfx7Qk2LmN9v")
    raw = (
        sample("postfix_user_unknown.eml")
        .replace(b"Status: 5.1.1", b"Status: 5.3.4")
        .replace(b"User unknown in virtual mailbox table", b"Message size exceeds fixed limit")
    )

    inbound = receive_message(session, settings, source="smtp", raw=raw)

    bounce = session.scalars(select(Bounce).where(Bounce.inbound_message_id == inbound.id)).one()
    assert bounce.kind is BounceKind.MESSAGE
    assert bounce.is_suppressing is False
    assert not is_suppressed(session, address)
    session.expire_all()
    assert session.get(Bounce, bounce.id).kind is BounceKind.MESSAGE
