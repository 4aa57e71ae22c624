"""Every outgoing mail takes one road: VERP sender, DKIM, numeric Date zone, short QP lines,
IDNA domains; and one address check refuses what we cannot send."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import re
import smtplib
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.admin.services import send_test_email_now
from distributor.audience import services as audience
from distributor.delivery.mime import current_date, format_to
from distributor.errors import ValidationFailed
from distributor.mail import outgoing
from distributor.mail.addresses import InvalidAddress, normalise_address, wire_address
from distributor.mail.rendering import EmailRenderer, RenderedEmail
from distributor.mail.transport import InMemoryTransport, SMTPConfig, parse_smtp_urls
from distributor.settings import Settings, default_helo_name

_NUMERIC_DATE = re.compile(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


def _signing(settings: Settings, tmp_path: Path) -> tuple[Settings, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    signing = dataclasses.replace(
        settings, dkim_selector="mail2026", dkim_private_key_path=str(path)
    )
    return signing, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.mark.usefixtures("app_ctx")
def test_a_staff_test_mail_is_signed_and_bounces_to_the_bounce_domain(
    session: Session, make_user, settings: Settings, tmp_path: Path
) -> None:
    signing, record = _signing(settings, tmp_path)
    user = make_user(Role.ADMIN, name="Ada Admin")
    transport = InMemoryTransport()

    send_test_email_now(
        session,
        to_address="desk@example.org",
        requested_by_id=user.id,
        settings=signing,
        renderer=EmailRenderer(),
        transport=transport,
    )

    [sent] = transport.sent
    assert re.fullmatch(
        rf"bounces\+[\w-]{{16,}}@{re.escape(settings.bounce_domain)}", sent.envelope_from
    )
    assert sent.message.startswith(b"DKIM-Signature:")
    assert dkim.verify(sent.message, dnsfunc=lambda name, timeout=5: record)
    message = email.message_from_bytes(sent.message, policy=email.policy.default)
    assert _NUMERIC_DATE.match(str(message["Date"]))
    assert not str(message["Subject"]).startswith(" ")
    assert message["Message-ID"].endswith(f"@{settings.from_domain}>")


def test_transactional_quoted_printable_lines_are_at_most_76_octets(settings: Settings) -> None:
    long_line = "Très long paragraphe sans retour à la ligne, " * 40
    mail = outgoing.build_transactional(
        settings,
        rendered=RenderedEmail(subject="Bonjour", html=f"<p>{long_line}</p>", text=long_line),
        from_name="Harbourlight",
        to_address="desk@example.org",
    )

    body = mail.message.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


def test_the_bulk_date_header_has_a_numeric_zone() -> None:
    assert _NUMERIC_DATE.match(current_date().decode())
    assert _NUMERIC_DATE.match(outgoing.date_header(0))


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Ana.Lima@Example.ORG", "ana.lima@example.org"),
        ("redaktion@bücher.example", "redaktion@xn--bcher-kva.example"),
        ("desk@ÉCOLE.example", "desk@xn--cole-9oa.example"),
    ],
)
def test_domains_are_kept_and_sent_in_idna_form(typed: str, stored: str) -> None:
    assert normalise_address(typed) == stored
    assert wire_address(typed.lower()) == stored
    assert format_to("", typed.lower()) == stored.encode()


def test_an_internationalised_local_part_is_refused_at_input_with_a_reason() -> None:
    with pytest.raises(InvalidAddress, match="SMTPUTF8"):
        normalise_address("jörg@example.org")
    with pytest.raises(ValidationFailed, match="SMTPUTF8"):
        audience.normalise_address("jörg@example.org")


def test_the_transactional_transport_needs_smtputf8_for_such_an_address() -> None:
    from distributor.mail.transport import SMTPTransport
    from tests.support.smtp import SMTPSink

    with SMTPSink(enable_SMTPUTF8=False) as relay:
        transport = SMTPTransport(SMTPConfig(host="127.0.0.1", port=relay.port))
        with pytest.raises(smtplib.SMTPNotSupportedError):
            transport.send("bounces+x@b.example", ["jörg@example.org"], b"Subject: x\r\n\r\nx")
        transport.send("bounces+x@b.example", ["desk@example.org"], b"Subject: x\r\n\r\n.x\r\n")
        [received] = relay.wait_for(1)
    assert received.rcpt_tos == ["desk@example.org"]
    assert received.raw.endswith(b"\r\n.x\r\n")


def test_the_helo_name_is_a_dotted_name_never_localhost(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import distributor.settings as module

    monkeypatch.setattr(module, "_host_fqdn", lambda: "localhost")
    assert default_helo_name("harbourlight.example") == "harbourlight.example"
    monkeypatch.setattr(module, "_host_fqdn", lambda: "mail3.harbourlight.example")
    assert default_helo_name("harbourlight.example") == "mail3.harbourlight.example"

    named = dataclasses.replace(settings, smtp_helo_name="out.harbourlight.example")
    assert named.helo_name == "out.harbourlight.example"
    [relay] = parse_smtp_urls("smtp://127.0.0.1:25", helo_name=named.helo_name)
    assert relay.helo_name == "out.harbourlight.example"

    from distributor.delivery.smtp_client import SMTPClient

    assert SMTPClient(relay).local_hostname == "out.harbourlight.example"
