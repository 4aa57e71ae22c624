"""Finding 7: the tokens in a mail's headers are not the tracking token its body shows."""

from __future__ import annotations

import email
import email.policy
import re

from sqlalchemy.orm import Session

from distributor.audience.models import SuppressionReason
from distributor.audience.services import find_suppression
from distributor.bounces.services import receive_message
from distributor.delivery.rendering import Recipient, compile_release
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.bounces import delivery, sample

ADDRESS = "m.okafor@northwind-news.example"
TRACKING = "Trk9Zq4Wx2Lm7Pn3"
UNSUBSCRIBE_MAIL = (
    b"From: m.okafor@northwind-news.example\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
)


def _render(session: Session, settings: Settings) -> tuple[str, str, str, bytes]:
    """(envelope sender, mailto unsubscribe address, Message-ID, raw) of a real release mail."""
    f.organisation(session, settings)
    d = delivery(session, email=ADDRESS, token=TRACKING)
    compiled = compile_release(session, d.release_id, settings)
    envelope_from, message_id, raw = compiled.message_for(
        Recipient(
            delivery_id=d.id,
            journalist_id=d.journalist_id,
            email=ADDRESS,
            name="M Okafor",
            verp_token=TRACKING,
            matched_beats="Climate",
            is_tracking_allowed=True,
        )
    )
    d.message_id = message_id  # what the sender records on acceptance
    session.flush()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    mailto = re.search(r"mailto:([^?>]+)", str(message["List-Unsubscribe"]))
    assert mailto
    return envelope_from, mailto.group(1), message_id, raw


def test_header_tokens_differ_from_the_tracking_token_and_from_each_other(
    session: Session, settings: Settings
) -> None:
    envelope_from, mailto, message_id, raw = _render(session, settings)
    assert TRACKING.encode() in raw  # the pixel in the body carries it
    for header_value in (envelope_from, mailto, message_id):
        assert TRACKING not in header_value
    bounce_token = envelope_from.split("+", 1)[1].split("@")[0]
    unsubscribe_token = mailto.split("+", 1)[1].split("@")[0]
    assert bounce_token != unsubscribe_token
    assert bounce_token not in message_id and unsubscribe_token not in message_id


def test_a_forwarded_copy_cannot_unsubscribe_by_mail(session: Session, settings: Settings) -> None:
    _envelope_from, mailto, _mid, _raw = _render(session, settings)
    domain = settings.bounce_domain
    receive_message(
        session,
        settings,
        source="smtp",
        raw=UNSUBSCRIBE_MAIL,
        envelope_to=f"unsubscribe+{TRACKING}@{domain}",
    )
    assert find_suppression(session, ADDRESS) is None
    # The bounce token is not an unsubscribe token either.
    bounce_token = _envelope_from.split("+", 1)[1].split("@")[0]
    receive_message(
        session,
        settings,
        source="smtp",
        raw=UNSUBSCRIBE_MAIL + b"x",
        envelope_to=f"unsubscribe+{bounce_token}@{domain}",
    )
    assert find_suppression(session, ADDRESS) is None
    # The genuine List-Unsubscribe mailto still works at once (RFC 2369).
    receive_message(
        session, settings, source="smtp", raw=UNSUBSCRIBE_MAIL + b"y", envelope_to=mailto
    )
    entry = find_suppression(session, ADDRESS)
    assert entry is not None and entry.reason is SuppressionReason.UNSUBSCRIBED_ALL


def test_a_forged_dsn_to_the_tracking_token_suppresses_no_one(
    session: Session, settings: Settings
) -> None:
    envelope_from, _mailto, _mid, _raw = _render(session, settings)
    forged = sample("postfix_user_unknown.eml").replace(b"pfx7Qk2LmN9v", TRACKING.encode())
    receive_message(session, settings, source="smtp", raw=forged)
    assert find_suppression(session, ADDRESS) is None

    genuine = (
        sample("postfix_user_unknown.eml")
        .replace(b"bounces+pfx7Qk2LmN9v@bounces.harbourlight.example", envelope_from.encode())
        .replace(b"<20261124091403.4Xk2Qw0c1Zz9sT@", b"<another-report@")
    )
    receive_message(session, settings, source="smtp", raw=genuine)
    entry = find_suppression(session, ADDRESS)
    assert entry is not None and entry.reason is SuppressionReason.HARD_BOUNCE
