"""gunicorn with ``TrackingWorker``: the same answers as the app, one event per answered request."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from distributor.app import create_app
from distributor.db import Database, utcnow
from distributor.delivery.models import Delivery, DeliveryStatus
from distributor.reports.sample import HUMAN_UA, seed_sent_release
from distributor.settings import Settings
from distributor.tracking.buffer import QUEUE_KEY, RedisEventBuffer
from distributor.tracking.fastpath import PIXEL_GIF
from distributor.tracking.models import TrackedLink
from distributor.tracking.tasks import flush_events
from tests.support.services import free_port
from tests.support.tracking import stored_events
from tests.support.worker import ROOT, service_env

WORKER = "distributor.tracking.worker.TrackingWorker"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Connection:
    """One kept-alive client connection that reads answers one by one."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, *requests: tuple[str, str, dict[str, str]]) -> None:
        """Send the requests in one write (more than one: pipelined)."""
        data = b""
        for method, path, fields in requests:
            lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"User-Agent: {HUMAN_UA}"]
            lines += [f"{name}: {value}" for name, value in fields.items()]
            data += ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(data)

    def answer(self, *, head: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(int(lines[0].split(" ")[1]), headers, body)

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buf += chunk


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited early"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not listen")


def _without_date(response: Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "date"}


def test_the_worker_answers_as_the_app_does_and_keeps_one_event_per_answer(
    live_db: Database, broker: str, settings: Settings, tmp_path: Path
) -> None:
    with live_db.session() as session, session.begin():
        release = seed_sent_release(session, recipients=3, prefix="wrk")
        deliveries = list(
            session.scalars(select(Delivery).where(Delivery.release_id == release.id))
        )
        for d in deliveries:
            d.status, d.sent_at = DeliveryStatus.SENT, utcnow() - dt.timedelta(hours=1)
        tokens = [d.verp_token for d in deliveries]
        link = session.scalars(
            select(TrackedLink).where(TrackedLink.release_id == release.id)
        ).first()
        assert link is not None
        link_id, link_url, release_id = link.id, link.url, release.id
    before = _stored(live_db, release_id)
    RedisEventBuffer.from_url(broker).client.delete(QUEUE_KEY)
    port = free_port()
    access_log = tmp_path / "access.log"
    env = service_env(
        DATABASE_URL=settings.database_url,
        REDIS_URL=broker,
        DATA_DIR=settings.data_dir,
        PUBLIC_BASE_URL="http://localhost",
        RATE_LIMITS_ENABLED="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", WORKER,
         "--threads", "2", "--bind", f"127.0.0.1:{port}", "--access-logfile", str(access_log),
         "--access-logformat", "%(m)s %(s)s", "web:app"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(port, proc)
        conn = Connection(port)
        pixel = f"/t/o/{tokens[0]}.gif"
        conn.send(("GET", pixel, {}))  # a thread answers: the tracking switch is read first
        assert conn.answer().body == PIXEL_GIF
        conn.send(("GET", f"/t/o/{tokens[1]}.gif", {}))  # kept alive: the event loop's
        by_loop = conn.answer()
        conn.send(("GET", pixel, {}), ("GET", pixel, {}))  # pipelined: gunicorn parses both
        by_thread = [conn.answer(), conn.answer()]
        for response in (by_loop, *by_thread):
            assert (response.status, response.body) == (200, PIXEL_GIF)
            assert _without_date(response) == _without_date(by_loop)
        conn.send(("HEAD", f"/t/o/{tokens[2]}.gif", {}))
        head = conn.answer(head=True)
        assert (head.status, head.body, _without_date(head)) == (200, b"", _without_date(by_loop))
        conn.send(("GET", "/t/o/not-a-real-token.gif", {}))  # answered alike, stored nowhere
        assert conn.answer().body == PIXEL_GIF
        click = f"/t/c/{tokens[0]}/{link_id}"
        conn.send(("GET", click, {}))  # not cached yet: a thread resolves it
        first_click = conn.answer()
        conn.send(("GET", click, {}))  # cached in this worker: the event loop answers
        second_click = conn.answer()
        assert first_click.status == second_click.status == 302
        assert second_click.headers["location"] == link_url
        assert _without_date(second_click) == _without_date(first_click)
        conn.send(("GET", f"/t/c/{tokens[0]}/999999", {}))  # unknown link: the app's 404
        assert conn.answer().status == 404
        conn.send(("GET", pixel, {"Connection": "close"}))
        last = conn.answer()
        assert (last.body, last.headers["connection"]) == (PIXEL_GIF, "close")
        assert conn.closed()
        fresh = Connection(port)  # a new connection's first request: the event loop's
        fresh.send(("GET", f"/t/o/{tokens[1]}.gif", {"Connection": "close"}))
        assert fresh.answer().body == PIXEL_GIF
        assert fresh.closed()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    # Answered with a real token: 2 pixels, 2 pipelined, 1 HEAD, 2 clicks, 2 closing = 9 events;
    # the unknown token's event is buffered too and dropped by the flush.
    buffer = RedisEventBuffer.from_url(broker)
    assert buffer.client.llen(QUEUE_KEY) == 10
    app = create_app(dataclasses.replace(settings, redis_url=broker), db=live_db)
    with app.app_context():
        flush_events(app)
    assert _stored(live_db, release_id) - before == 9
    # Only what the threads answered is in gunicorn's access log: the loop took the rest.
    assert access_log.read_text().split("\n")[:-1] == [
        "GET 200", "GET 200", "GET 200", "GET 302", "GET 404"
    ]  # fmt: skip


def _stored(db: Database, release_id: int) -> int:
    with db.session() as session:
        return stored_events(session, release_id)
