"""The address rules for internationalised mailboxes (RFC 6531/6532) and what goes on the wire."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from distributor.audience import services as audience
from distributor.delivery.mime import format_to
from distributor.delivery.smtp_client import SMTPClient, SMTPUTF8NotOffered
from distributor.errors import ValidationFailed
from distributor.mail.addresses import InvalidAddress, needs_smtputf8, normalise_address
from distributor.mail.outcomes import BounceKind, Outcome, smtputf8_not_offered
from distributor.mail.transport import SMTPConfig


@dataclass
class Relay:
    """A relay check that answers as told and counts how often it was asked."""

    refusal: str | None = None
    asked: int = 0

    def smtputf8_refusal(self) -> str | None:
        self.asked += 1
        return self.refusal


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("José@例子.广告", "josé@xn--fsqu00a.xn--4rr70v"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
        ("jörg@example.org", "jörg@example.org"),
        # NFC: a decomposed "ö" (o + combining diaeresis) is stored composed, so one mailbox
        # has one key on the suppression list.
        ("jo\u0308rg@Example.ORG", "jörg@example.org"),
    ],
)
def test_a_utf8_local_part_is_kept_and_the_domain_goes_to_idna(typed: str, stored: str) -> None:
    relay = Relay()
    assert normalise_address(typed, relay=relay) == stored
    assert relay.asked == 1
    assert needs_smtputf8(stored)


def test_plain_addresses_never_ask_the_relay() -> None:
    relay = Relay(refusal="never asked")
    assert normalise_address("Ana@bücher.example", relay=relay) == "ana@xn--bcher-kva.example"
    assert relay.asked == 0 and not needs_smtputf8("ana@xn--bcher-kva.example")


def test_without_smtputf8_the_address_is_refused_with_the_relays_reason() -> None:
    relay = Relay(refusal="our mail relay relay.example:25 does not offer SMTPUTF8")
    with pytest.raises(InvalidAddress) as refused:
        normalise_address("josé@example.org", relay=relay)
    assert "does not offer SMTPUTF8" in str(refused.value)
    assert "plain-ASCII name part" in str(refused.value)
    with pytest.raises(ValidationFailed, match=r"relay\.example:25 does not offer SMTPUTF8"):
        audience.normalise_address("josé@example.org", relay=relay)
    with pytest.raises(InvalidAddress, match="could not be asked"):
        normalise_address("josé@example.org")  # no relay to ask: refused too


def test_invalid_utf8_addresses_stay_invalid_when_smtputf8_is_offered() -> None:
    relay = Relay()
    # 33 two-octet letters: 66 octets, over RFC 5321's 64 though only 33 characters.
    for bad in ("jo sé@example.org", "josé@", "josé@@example.org", "é" * 33 + "@example.org"):
        with pytest.raises(InvalidAddress):
            normalise_address(bad, relay=relay)
    assert normalise_address("é" * 32 + "@example.org", relay=relay) == "é" * 32 + "@example.org"


def test_the_to_header_carries_the_utf8_mailbox_raw() -> None:
    # RFC 6532: raw UTF-8 in the header, no encoded word for the address; the name still
    # takes RFC 2047 (valid in either kind of message).
    assert format_to("", "josé@xn--fsqu00a.xn--4rr70v") == "josé@xn--fsqu00a.xn--4rr70v".encode()
    to = format_to("José Díaz", "josé@例子.广告")
    assert to.endswith(" <josé@xn--fsqu00a.xn--4rr70v>".encode())
    assert to.startswith(b"=?utf-8?")
    with pytest.raises(ValueError, match="not a mailbox we can write"):
        format_to("", "jo\x00sé@example.org")


def _client(extensions: dict[str, str]) -> tuple[SMTPClient, socket.socket]:
    ours, theirs = socket.socketpair()
    client = SMTPClient(SMTPConfig(host="relay.example", port=2525), local_hostname="a.example")
    client._sock = ours  # a connected session, as after EHLO
    client.extensions = extensions
    client.is_pipelining = True
    theirs.settimeout(2)
    return client, theirs


def test_the_envelope_says_smtputf8_and_8bitmime_only_when_needed() -> None:
    client, server = _client({"PIPELINING": "", "8BITMIME": "", "SMTPUTF8": ""})
    client.write_envelope("bounces+t@b.example", "josé@xn--fsqu00a.xn--4rr70v")
    assert (
        server.recv(4096)
        == (
            "MAIL FROM:<bounces+t@b.example> SMTPUTF8 BODY=8BITMIME\r\n"
            "RCPT TO:<josé@xn--fsqu00a.xn--4rr70v>\r\nDATA\r\n"
        ).encode()
    )
    client.write_envelope("bounces+t@b.example", "ana@example.org")
    assert server.recv(4096) == (
        b"MAIL FROM:<bounces+t@b.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\n"
    )
    client.close()
    server.close()


def test_nothing_is_written_to_a_relay_without_smtputf8() -> None:
    client, server = _client({"PIPELINING": "", "8BITMIME": ""})
    with pytest.raises(SMTPUTF8NotOffered) as refused:
        client.write_envelope("bounces+t@b.example", "josé@example.org")
    assert (refused.value.relay, refused.value.missing) == ("relay.example:2525", "SMTPUTF8")
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(10)  # not one byte went out
    assert client.is_connected  # the session goes on for the lane's next row
    client.close()
    server.close()


def test_the_outcome_authority_names_the_relay_and_fails_without_a_bounce() -> None:
    text, verdict = smtputf8_not_offered("relay.example:2525", "SMTPUTF8")
    assert "relay.example:2525 does not offer SMTPUTF8" in text and "5.6.7" in text
    assert verdict.outcome is Outcome.FAILED and verdict.kind is BounceKind.RELAY
    assert not verdict.is_suppressing and not verdict.stops_the_send
