"""The bounce receiver over a real SMTP connection on loopback, in-process and as `flask bounces serve`."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from distributor.audience.services import is_suppressed
from distributor.bounces import services
from distributor.bounces.models import Bounce, Classification, InboundMessage
from distributor.bounces.receiver import is_bounce_address, make_controller
from distributor.db import Database
from distributor.delivery.models import Delivery
from distributor.settings import Settings
from tests.support.bounces import delivery, sample
from tests.support.services import free_port
from tests.support.worker import ROOT, service_env

pytestmark = pytest.mark.integration

ADDRESS = "m.okafor@northwind-news.example"
TOKEN = "pfx7Qk2LmN9v"
VERP = f"bounces+{TOKEN}@bounces.harbourlight.example"


def wire(name: str) -> bytes:
    """A sample as it travels over SMTP: CRLF line ends."""
    return sample(name).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture()
def delivered(live_db: Database) -> Database:
    """The committed delivery whose VERP address the bounces name (``live_db`` removes it)."""
    with live_db.session() as session, session.begin():
        delivery(session, email=ADDRESS, token=TOKEN)
    return live_db


def _wait_for_processed(db: Database, timeout: float = 30.0) -> InboundMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            row = session.scalar(
                select(InboundMessage).where(InboundMessage.processed_at.is_not(None))
            )
            if row is not None:
                return row
        time.sleep(0.1)
    raise AssertionError("the receiver did not process the message")


def test_a_bounce_over_smtp_is_stored_classified_and_suppresses(
    settings: Settings, delivered: Database
) -> None:
    port = free_port()
    controller = make_controller(delivered, settings, "127.0.0.1", port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            refused = smtp.sendmail("", [VERP], wire("postfix_user_unknown.eml"))
        assert refused == {}
    finally:
        controller.stop()  # finishes reading what was accepted

    with delivered.session() as session:
        inbound = session.scalars(select(InboundMessage)).one()
        assert inbound.source == "smtp"
        assert inbound.envelope_to == VERP
        assert inbound.classification is Classification.BOUNCE
        bounce = session.scalars(select(Bounce)).one()
        d = session.scalars(select(Delivery).where(Delivery.verp_token == TOKEN)).one()
        assert (bounce.delivery_id, bounce.matched_by) == (d.id, "verp")
        assert is_suppressed(session, ADDRESS)


def test_the_receiver_is_not_an_open_relay(settings: Settings, delivered: Database) -> None:
    port = free_port()
    controller = make_controller(delivered, settings, "127.0.0.1", port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("spammer@example.org")
            for target in (
                "victim@example.org",
                "bounces+x@harbourlight.example",  # our organisation, but not the bounce domain
                "victim@example.org@bounces.harbourlight.example",
                "victim%example.org@bounces.harbourlight.example",
            ):
                code, _ = smtp.rcpt(target)
                assert code in (550, 553), target  # refused, never queued
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.data(b"Subject: relay me\r\n\r\nhello\r\n")
            assert refused.value.smtp_code == 503  # no valid recipient: no message
    finally:
        controller.stop()

    with delivered.session() as session:
        assert session.scalars(select(InboundMessage)).all() == []


def test_bounce_address_check() -> None:
    domain = "bounces.harbourlight.example"
    assert is_bounce_address("bounces+abc@BOUNCES.harbourlight.example", domain)
    assert is_bounce_address("<fbl@bounces.harbourlight.example>", domain)
    assert not is_bounce_address("bounces+abc@evil.example", domain)
    assert not is_bounce_address("a@b@bounces.harbourlight.example", domain)
    assert not is_bounce_address("@bounces.harbourlight.example", domain)


def test_flask_bounces_serve_runs_the_receiver(settings: Settings, delivered: Database) -> None:
    port = free_port()
    env = service_env(DATABASE_URL=settings.database_url, DATA_DIR=settings.data_dir)
    env.pop("REDIS_URL", None)
    log = Path(settings.data_dir) / f"bounces-serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "web", "bounces", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text(errors="replace")) from None
                time.sleep(0.2)
        with smtp:
            smtp.sendmail("", [VERP], wire("postfix_user_unknown.eml"))
        inbound = _wait_for_processed(delivered)
        assert inbound.classification is Classification.BOUNCE
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.read_text(errors="replace")


def test_the_receiver_answers_before_it_reads_the_message(
    settings: Settings, delivered: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Anyone can mail the bounce domain: the 250 must not wait for a crafted message's parse.
    import threading

    from distributor.bounces import receiver

    release = threading.Event()
    real = services.process_inbound  # what the receiver imported

    def slow_process(*args: Any, **kwargs: Any) -> object:
        assert release.wait(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(receiver, "process_inbound", slow_process)
    port = free_port()
    controller = make_controller(delivered, settings, "127.0.0.1", port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            assert smtp.sendmail("", [VERP], wire("postfix_user_unknown.eml")) == {}
        with delivered.session() as session:
            stored = session.scalars(select(InboundMessage)).one()
            assert stored.processed_at is None  # answered 250 while still unread
    finally:
        release.set()
        controller.stop()  # finishes reading what was accepted

    assert _wait_for_processed(delivered).classification is Classification.BOUNCE
