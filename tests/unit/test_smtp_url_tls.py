"""``SMTP_URL``'s TLS options (``ca_file``, ``tls_min``) and how every sender applies them.

The relay is aiosmtpd on loopback with a certificate signed by a private CA made here; nothing
is trusted through ``SSL_CERT_FILE``: only what ``ca_file`` names.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from distributor.delivery.smtp_client import SMTPClient, SMTPConnectionLost
from distributor.mail.outcomes import Reply, Stage, classify_reply
from distributor.mail.relay_check import check_relays
from distributor.mail.transport import SMTPConfig, SMTPTransport
from tests.support.smtp import SMTPSink
from tests.support.tls import issue_certificate, make_private_ca, server_context

MESSAGE = b"Subject: private CA\r\nTo: desk@example.org\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture()
def relay(ca: tuple[Path, Path], tmp_path: Path) -> Iterator[SMTPSink]:
    context = server_context(issue_certificate(tmp_path / "relay", ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with SMTPSink(tls_context=context, require_starttls=True) as sink:
        yield sink


def test_smtp_url_names_a_ca_file_and_a_minimum_tls_version() -> None:
    config = SMTPConfig.from_url(
        "smtp://h.example:587?starttls=required&ca_file=/ca.pem&tls_min=1.2"
    )
    assert (config.starttls, config.ca_file, config.tls_min) == (True, "/ca.pem", "1.2")
    assert SMTPConfig.from_url("smtp://h.example?tls_min=TLSv1.3").tls_min == "1.3"
    with pytest.raises(ValueError, match="tls_min"):
        SMTPConfig.from_url("smtp://h.example?tls_min=1.4")


def test_every_sender_trusts_the_private_ca_named_in_smtp_url(
    relay: SMTPSink, ca: tuple[Path, Path]
) -> None:
    url = f"{relay.url}?starttls=required&ca_file={ca[0]}&tls_min=1.2"
    config = SMTPConfig.from_url(url)
    bulk = SMTPClient(config)
    bulk.connect()
    assert bulk.send("bounces@example.org", "bulk@example.org", MESSAGE)[1].code == 250
    bulk.quit()
    SMTPTransport(config).send("bounces@example.org", ["one@example.org"], MESSAGE)
    (status,) = check_relays(url)
    assert status.is_reachable
    received = relay.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["bulk@example.org", "one@example.org"]


@pytest.fixture()
def tls12_relay(ca: tuple[Path, Path], tmp_path: Path) -> Iterator[int]:
    """A relay that offers STARTTLS but speaks TLS 1.2 at most (a blocking OpenSSL server, so
    it answers a client asking for 1.3 with the protocol_version alert, as Postfix does)."""
    context = server_context(issue_certificate(tmp_path / "old", ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"220 old.test ESMTP\r\n")
                reader = conn.makefile("rb")
                reader.readline()
                conn.sendall(b"250-old.test\r\n250 STARTTLS\r\n")
                reader.readline()
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                context.wrap_socket(conn, server_side=True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    thread.join(10)
    listener.close()


def test_a_relay_below_tls_min_is_refused_in_words_and_stops_the_send(
    tls12_relay: int, ca: tuple[Path, Path]
) -> None:
    url = f"smtp://127.0.0.1:{tls12_relay}?starttls=required&ca_file={ca[0]}&tls_min=1.3"
    with pytest.raises(SMTPConnectionLost) as lost:
        SMTPClient(SMTPConfig.from_url(url)).connect()
    assert lost.value.stage is Stage.TLS
    assert lost.value.reason.startswith("relay does not offer TLS 1.3 or newer")
    assert classify_reply(Reply(Stage.TLS, 0, lost.value.reason)).stops_the_send


def test_without_the_ca_file_the_private_relay_is_not_trusted(
    relay: SMTPSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    (status,) = check_relays(f"{relay.url}?starttls=required")
    assert not status.is_reachable
    assert status.detail.startswith("relay certificate not trusted: unable to get local issuer")
    assert "set ca_file" in status.detail
    missing = tmp_path / "missing.pem"
    (status,) = check_relays(f"{relay.url}?starttls=required&ca_file={missing}")
    assert status.detail == f"relay certificate cannot be checked: CA file {missing} cannot be read"
    with pytest.raises((ConnectionError, smtplib.SMTPException)):
        SMTPTransport(SMTPConfig.from_url(f"{relay.url}?starttls=1&ca_file={missing}")).send(
            "bounces@example.org", ["one@example.org"], MESSAGE
        )
    assert relay.received == []
