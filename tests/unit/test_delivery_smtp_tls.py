"""The bulk SMTP client over STARTTLS and implicit TLS, with AUTH, against aiosmtpd on loopback.

The server's certificate is made for the test and trusted through ``SSL_CERT_FILE``, the way a
deployment trusts a private relay's CA; the client verifies it like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from distributor.delivery.smtp_client import SMTPClient, SMTPConnectionLost, SMTPRefused
from distributor.mail.outcomes import Stage
from distributor.mail.transport import SMTPConfig
from tests.support.smtp import SMTPSink
from tests.support.tls import make_certificate, server_context

USER, PASSWORD = "relay-user", "s3cret pass"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


logins: list[str] = []


def _authenticator(
    _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    if ok:
        logins.append(f"{mechanism}:{auth_data.login.decode()}")
    return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself


@pytest.fixture()
def starttls_relay(certificate: tuple[Path, Path]) -> Iterator[SMTPSink]:
    with SMTPSink(
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    ) as sink:
        yield sink


MESSAGE = b"Subject: over TLS\r\nTo: desk@example.org\r\n\r\nhello\r\n"


@pytest.mark.usefixtures("trusted")
def test_starttls_then_auth_then_pipelined_messages(starttls_relay: SMTPSink) -> None:
    logins.clear()
    config = SMTPConfig(
        "127.0.0.1", starttls_relay.port, username=USER, password=PASSWORD, starttls=True
    )
    client = SMTPClient(config)
    client.connect()
    for i in range(3):
        stage, reply = client.send("bounces@example.org", f"desk{i}@example.org", MESSAGE)
        assert (stage, reply.code) == (Stage.DOT, 250)
    client.quit()
    received = starttls_relay.wait_for(3)
    assert [r.rcpt_tos for r in received] == [[f"desk{i}@example.org"] for i in range(3)]
    assert logins == ["PLAIN:relay-user"]


@pytest.mark.usefixtures("trusted")
def test_a_wrong_password_is_a_refused_session(starttls_relay: SMTPSink) -> None:
    config = SMTPConfig(
        "127.0.0.1", starttls_relay.port, username=USER, password="wrong", starttls=True
    )
    with pytest.raises(SMTPRefused) as refused:
        SMTPClient(config).connect()
    assert refused.value.reply.code == 535


def test_an_untrusted_certificate_stops_the_session_before_any_mail(
    starttls_relay: SMTPSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-ca.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    config = SMTPConfig("127.0.0.1", starttls_relay.port, starttls=True)
    with pytest.raises(SMTPConnectionLost) as lost:
        SMTPClient(config).connect()
    assert lost.value.stage is Stage.TLS
    assert lost.value.reason.startswith("relay certificate not trusted: self-signed certificate")
    assert starttls_relay.received == []


def test_starttls_required_but_not_offered_is_refused() -> None:
    with SMTPSink() as plain:
        config = SMTPConfig("127.0.0.1", plain.port, starttls=True)
        with pytest.raises(SMTPRefused) as refused:
            SMTPClient(config).connect()
    assert "STARTTLS" in refused.value.reply.text


@pytest.mark.usefixtures("trusted")
def test_implicit_tls_and_a_batch_of_lanes_over_it(certificate: tuple[Path, Path]) -> None:
    logins.clear()
    # aiosmtpd does not count implicit TLS as "TLS" for auth_require_tls; the socket is TLS.
    with SMTPSink(
        ssl_context=server_context(certificate),
        authenticator=_authenticator,
        auth_require_tls=False,
    ) as relay:
        config = SMTPConfig.from_url(f"smtps://{USER}:s3cret%20pass@127.0.0.1:{relay.port}")
        assert config.use_ssl and config.password == PASSWORD
        clients = [SMTPClient(config) for _ in range(3)]
        for client in clients:
            client.connect()
        for round_ in range(4):  # interleaved, like the lanes of one batch
            for n, client in enumerate(clients):
                client.write_envelope("bounces@example.org", f"r{round_}-{n}@example.org")
            for client in clients:
                assert client.read_envelope() is None
                client.write_body(MESSAGE, is_dot_safe=True)
            for client in clients:
                assert client.read_body_reply().code == 250
        for client in clients:
            client.quit()
        assert len(relay.wait_for(12)) == 12
    assert logins == ["PLAIN:relay-user"] * 3
