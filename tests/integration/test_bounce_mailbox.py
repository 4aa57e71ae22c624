"""Polling a bounce mailbox: tiny real IMAP4rev1 and POP3 servers on loopback."""

from __future__ import annotations

import dataclasses
import poplib
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.audience.services import is_suppressed
from distributor.bounces import mailbox, services
from distributor.bounces.mailbox import parse_mailbox_url, poll_mailbox
from distributor.bounces.models import Classification, InboundMessage
from distributor.db import Database
from distributor.errors import ValidationFailed
from distributor.settings import Settings
from tests.support.bounces import delivery, sample
from tests.support.services import flush_private_redis, need, redis_available, redis_url
from tests.support.worker import celery_worker, service_env

pytestmark = pytest.mark.integration

USER, PASSWORD = "bounces", "mailbox-pass"
SAMPLES = ["postfix_user_unknown.eml", "yahoo_arf_complaint.eml", "vacation_rfc3834.eml"]


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Mailbox:
    def __init__(self, messages: list[bytes]) -> None:
        self.lock = threading.Lock()
        self.messages: dict[int, bytes] = {i + 1: crlf(m) for i, m in enumerate(messages)}


# -- a minimal POP3 server (RFC 1939) ---------------------------------------------------------


class POP3Handler(socketserver.StreamRequestHandler):
    server: Any

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self) -> None:
        box: Mailbox = self.server.mailbox
        authed, user, deleted = False, b"", set()
        self.send(b"+OK fake POP3 ready")
        with box.lock:
            numbered = list(box.messages.items())  # message numbers are fixed for the session
        for raw_line in self.rfile:
            command, _, arg = raw_line.strip().partition(b" ")
            command = command.upper()
            if command == b"USER":
                user = arg
                self.send(b"+OK")
            elif command == b"PASS":
                authed = user == USER.encode() and arg == PASSWORD.encode()
                self.send(b"+OK logged in" if authed else b"-ERR [AUTH] invalid credentials")
            elif not authed and command != b"QUIT":
                self.send(b"-ERR log in first")
            elif command == b"STAT":
                size = sum(len(m) for _, m in numbered)
                self.send(b"+OK %d %d" % (len(numbered), size))
            elif command == b"RETR":
                _uid, message = numbered[int(arg) - 1]
                self.send(b"+OK %d octets" % len(message))
                for line in message.split(b"\r\n")[:-1]:
                    self.send(b"." + line if line.startswith(b".") else line)
                self.send(b".")
            elif command == b"DELE":
                deleted.add(numbered[int(arg) - 1][0])
                self.send(b"+OK deleted")
            elif command == b"QUIT":
                with box.lock:  # the UPDATE state: deletions happen only now
                    for uid in deleted:
                        box.messages.pop(uid, None)
                self.send(b"+OK bye")
                return
            else:
                self.send(b"-ERR unknown command")


# -- a minimal IMAP4rev1 server (RFC 3501), just what a poller uses -----------------------------


class IMAPHandler(socketserver.StreamRequestHandler):
    server: Any

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self) -> None:
        box: Mailbox = self.server.mailbox
        flagged: set[int] = set()
        self.send(b"* OK [CAPABILITY IMAP4rev1] fake IMAP ready")
        for raw_line in self.rfile:
            tag, _, rest = raw_line.strip().partition(b" ")
            words = rest.split(b" ")
            command = words[0].upper()
            if command == b"CAPABILITY":
                self.send(b"* CAPABILITY IMAP4rev1")
                self.send(tag + b" OK CAPABILITY completed")
            elif command == b"LOGIN":
                user, password = (w.strip(b'"') for w in words[1:3])
                ok = user == USER.encode() and password == PASSWORD.encode()
                self.send(tag + (b" OK LOGIN completed" if ok else b" NO [AUTHENTICATIONFAILED]"))
            elif command == b"SELECT":
                with box.lock:
                    self.send(b"* %d EXISTS" % len(box.messages))
                self.send(b"* OK [UIDVALIDITY 1] UIDs valid")
                self.send(tag + b" OK [READ-WRITE] SELECT completed")
            elif command == b"UID" and words[1].upper() == b"SEARCH":
                with box.lock:
                    uids = [u for u in box.messages if u not in flagged]
                self.send(b"* SEARCH" + b"".join(b" %d" % u for u in uids))
                self.send(tag + b" OK SEARCH completed")
            elif command == b"UID" and words[1].upper() == b"FETCH":
                uid = int(words[2])
                with box.lock:
                    message = box.messages.get(uid)
                    seq = list(box.messages).index(uid) + 1 if message else 0
                if message is not None:
                    self.wfile.write(
                        b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (seq, uid, len(message))
                    )
                    self.wfile.write(message + b")\r\n")
                self.send(tag + b" OK FETCH completed")
            elif command == b"UID" and words[1].upper() == b"STORE":
                flagged.add(int(words[2]))
                self.send(tag + b" OK STORE completed")
            elif command == b"EXPUNGE":
                with box.lock:
                    for uid in sorted(flagged, reverse=True):
                        if uid in box.messages:
                            seq = list(box.messages).index(uid) + 1
                            del box.messages[uid]
                            self.send(b"* %d EXPUNGE" % seq)
                flagged.clear()
                self.send(tag + b" OK EXPUNGE completed")
            elif command == b"LOGOUT":
                self.send(b"* BYE logging out")
                self.send(tag + b" OK LOGOUT completed")
                return
            else:
                self.send(tag + b" BAD unknown command")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    mailbox: Mailbox


def _serve(handler: type[socketserver.BaseRequestHandler], box: Mailbox) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), handler)
    server.mailbox = box
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def box() -> Mailbox:
    return Mailbox([sample(name) for name in SAMPLES])


@pytest.fixture()
def pop3_port(box: Mailbox) -> Iterator[int]:
    yield from _serve(POP3Handler, box)


@pytest.fixture()
def imap_port(box: Mailbox) -> Iterator[int]:
    yield from _serve(IMAPHandler, box)


@pytest.fixture()
def deliveries(session: Session) -> None:
    delivery(session, email="m.okafor@northwind-news.example", token="pfx7Qk2LmN9v")
    delivery(session, email="lena.voss@yahoo.com", token="yah3Mn7Bv5Cx")
    session.commit()


def _inbound(session: Session) -> list[InboundMessage]:
    session.expire_all()
    return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


@pytest.mark.usefixtures("deliveries")
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_polling_processes_and_deletes_every_message(
    request: pytest.FixtureRequest,
    protocol: str,
    db: Database,
    session: Session,
    settings: Settings,
    box: Mailbox,
) -> None:
    port = request.getfixturevalue(f"{protocol}_port")
    url = f"{protocol}://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX"

    result = poll_mailbox(db, settings, url=url, timeout=10)

    assert (result.fetched, result.deleted, result.failed) == (3, 3, 0)
    assert box.messages == {}
    rows = _inbound(session)
    assert [r.source for r in rows] == [protocol] * 3
    assert [r.classification for r in rows] == [
        Classification.BOUNCE,
        Classification.COMPLAINT,
        Classification.AUTO_REPLY,
    ]
    assert is_suppressed(session, "m.okafor@northwind-news.example")
    assert is_suppressed(session, "lena.voss@yahoo.com")
    assert poll_mailbox(db, settings, url=url, timeout=10).fetched == 0


@pytest.mark.usefixtures("deliveries")
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_message_that_fails_to_store_stays_in_the_mailbox(
    request: pytest.FixtureRequest,
    protocol: str,
    db: Database,
    session: Session,
    settings: Settings,
    box: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = request.getfixturevalue(f"{protocol}_port")
    url = f"{protocol}://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX"
    real = services.receive_message  # what mailbox imported

    def flaky(session: Session, settings: Settings, **kwargs: Any) -> InboundMessage:
        if b"Yahoo" in kwargs["raw"]:
            raise RuntimeError("database went away")
        return real(session, settings, **kwargs)

    monkeypatch.setattr(mailbox, "receive_message", flaky)
    first = poll_mailbox(db, settings, url=url, timeout=10)
    assert (first.fetched, first.deleted, first.failed) == (3, 2, 1)
    assert len(box.messages) == 1
    assert not is_suppressed(session, "lena.voss@yahoo.com")

    monkeypatch.setattr(mailbox, "receive_message", real)
    second = poll_mailbox(db, settings, url=url, timeout=10)
    assert (second.fetched, second.deleted) == (1, 1)
    assert box.messages == {}
    assert is_suppressed(session, "lena.voss@yahoo.com")


def test_wrong_pop3_password_stores_nothing(
    db: Database, session: Session, settings: Settings, pop3_port: int, box: Mailbox
) -> None:
    with pytest.raises(poplib.error_proto):
        poll_mailbox(db, settings, url=f"pop3://{USER}:nope@127.0.0.1:{pop3_port}", timeout=10)
    assert len(box.messages) == 3
    assert _inbound(session) == []


def test_mailbox_urls() -> None:
    config = parse_mailbox_url(
        "imaps://bounce%40harbourlight.example:p%40ss@imap.example.org/Bounces"
    )
    assert (config.protocol, config.is_tls, config.port) == ("imap", True, 993)
    assert (config.username, config.password, config.folder) == (
        "bounce@harbourlight.example",
        "p@ss",
        "Bounces",
    )
    assert parse_mailbox_url("pop3s://u:p@pop.example.org").port == 995
    for bad in ("http://u:p@example.org", "imaps://example.org/INBOX"):
        with pytest.raises(ValidationFailed):
            parse_mailbox_url(bad)


def test_the_periodic_poll_task_runs_in_a_real_worker(
    live_db: Database, settings: Settings, pop3_port: int, box: Mailbox
) -> None:
    need(redis_available(), f"Redis is not reachable at {redis_url()}")
    flush_private_redis()
    with live_db.session() as session, session.begin():
        delivery(session, email="m.okafor@northwind-news.example", token="pfx7Qk2LmN9v")
    url = f"pop3://{USER}:{PASSWORD}@127.0.0.1:{pop3_port}"
    env = service_env(
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url(),
        DATA_DIR=settings.data_dir,
        BOUNCE_MAILBOX_URL=url,
    )
    app = create_app(dataclasses.replace(settings, redis_url=redis_url()), db=live_db)
    with celery_worker(env, concurrency=1, pool="solo"):
        app.extensions["celery"].send_task("bounces.poll_mailbox")
        deadline = time.monotonic() + 60
        while box.messages and time.monotonic() < deadline:
            time.sleep(0.2)
    assert box.messages == {}
    with live_db.session() as session:
        rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        assert [r.classification for r in rows] == [
            Classification.BOUNCE,
            Classification.COMPLAINT,
            Classification.AUTO_REPLY,
        ]
        assert {r.source for r in rows} == {"pop3"}
        assert is_suppressed(session, "m.okafor@northwind-news.example")
