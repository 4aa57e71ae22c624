"""A gunicorn worker that answers pixel fetches and known clicks in its event loop.

gunicorn's threaded worker (``gthread``) hands every request to a thread of its pool: the
poller wakes, a future is queued, a thread parses the request with gunicorn's pure-Python
parser and builds a WSGI environ, and a callback brings the connection back to the poller.
On the 2-core machine that costs about 0.6 ms of CPU per request before the application
runs (``benchmarks/bench_tracking.py --worker-class gthread``), most of the cost of a pixel
fetch and more than a post-send burst of 1,667 fetches a second can afford on two cores.

``TrackingWorker`` is ``gthread`` with one shortcut. When a kept-alive connection becomes
readable (or a new one: it waits in the poller too, not in a thread), the event loop looks at
the bytes waiting in the kernel (``MSG_PEEK``, nothing consumed). If they are exactly one
complete, plain ``GET`` or ``HEAD`` HTTP/1.1 request for ``/t/o/<token>.gif``, or for
``/t/c/<token>/<link id>`` whose URL the click cache already holds (no body, no query, no
percent-escapes, nothing pipelined behind it), the loop answers it itself: the events of every
such request of one poll round go to Redis in one RPUSH, and only then are the requests
consumed and answered. Anything else (an uncached click, staff pages, a request not all there
yet, TLS, HTTP/2, the tracking switch due for a re-read, Redis failing) goes to the thread
pool unchanged, where the WSGI fast path and Flask answer it as before. So the guarantees are
the buffer's: an answered request's event is in the Redis list already (``buffer.py``), and
what is recorded is decided by the same ``Tracker`` (``fastpath.py``). Shortcut answers skip
gunicorn's access log and its ``pre_request`` and ``post_request`` hooks; their tokens would be
redacted from the log anyway.

Use it with ``gunicorn --worker-class distributor.tracking.worker.TrackingWorker --threads 4``.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.util import http_date
from gunicorn.workers.gthread import TConn, ThreadWorker

from distributor.logs import get_logger
from distributor.tracking.buffer import RawEvent
from distributor.tracking.fastpath import (
    PIXEL_GIF,
    PIXEL_HEADERS,
    Tracker,
    click_headers,
    get_tracker,
)

log = get_logger("distributor.tracking.worker")

# The request lines the shortcut takes; anything else goes to gunicorn's parser. The token
# class is ``services.is_plausible_token``'s, checked again by ``Tracker.event_for``.
_REQUEST_LINE = re.compile(
    rb"(GET|HEAD) /t/(?:o/([A-Za-z0-9_.=-]{1,64})\.gif|c/([A-Za-z0-9_.=-]{1,64})/([0-9]{1,10}))"
    rb" HTTP/1\.1"
)
# RFC 9110 section 5.1: a field name is a token; no space before the colon (RFC 9112 5.1).
_FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Control characters a field value may not hold (RFC 9110 section 5.5): gunicorn refuses them,
# and a NUL would make PostgreSQL refuse the stored event.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Fields that announce a body or a protocol change: such a request is gunicorn's to parse.
_NOT_PLAIN = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect"))
PEEK_BYTES = 8192


class TrackedRequest:
    """A pixel fetch or a known click the event loop can answer, and its size on the wire."""

    __slots__ = ("close", "event", "head", "size", "url")

    def __init__(
        self, size: int, head: bool, close: bool, event: RawEvent | None, url: str | None
    ) -> None:
        self.size = size
        self.head = head
        self.close = close
        self.event = event
        self.url = url  # the click's registered target; None for the pixel


def parse_tracked_request(data: bytes, tracker: Tracker) -> TrackedRequest | None:
    """The tracking request that is all of ``data``, or None when gunicorn should parse it.

    A click is taken only when its URL is in the tracker's click cache (no query here).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 != len(data):
        return None  # incomplete, or something pipelined behind it
    lines = data[:end].split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    url = None
    if line[3] is not None:
        url = tracker.click_cache.get((line[3].decode("ascii"), int(line[4])))
        if url is None:
            return None
    user_agent = b""
    close = False
    for field in lines[1:]:
        name, colon, value = field.partition(b":")
        if not colon or _FIELD_NAME.fullmatch(name) is None or _BAD_VALUE.search(value):
            return None  # malformed, folded, a bare LF or a NUL: the strict parser refuses it
        lname = name.lower()
        if lname in _NOT_PLAIN:
            return None
        if lname == b"user-agent":
            user_agent = value.strip(b" \t")
        elif lname == b"connection":
            close = b"close" in value.lower()
    method = line[1].decode("ascii")
    if url is None:
        event = tracker.event_for(
            "open", line[2].decode("ascii"), None, method, user_agent.decode("latin-1")
        )
    else:
        event = tracker.event_for(
            "click", line[3].decode("ascii"), int(line[4]), method, user_agent.decode("latin-1")
        )
    return TrackedRequest(len(data), method == "HEAD", close, event, url)


def _head(status: str, date: str, close: bool, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Server: gunicorn", f"Date: {date}"]
    lines.append("Connection: close" if close else "Connection: keep-alive")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Answers:
    """The response bytes; the pixel's are built once per second (the Date field changes)."""

    def __init__(self) -> None:
        self._second = -1
        self._date = ""
        self._pixel: dict[tuple[bool, bool], bytes] = {}

    def _tick(self) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = http_date(now)
            for close in (False, True):
                head = _head("200 OK", self._date, close, PIXEL_HEADERS)
                self._pixel[(close, False)] = head + PIXEL_GIF
                self._pixel[(close, True)] = head

    def pixel(self, *, head: bool, close: bool) -> bytes:
        self._tick()
        return self._pixel[(close, head)]

    def click(self, url: str, *, close: bool) -> bytes:
        self._tick()
        return _head("302 FOUND", self._date, close, click_headers(url))


class TrackingWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker, answering plain tracking requests in its event loop."""

    alive: bool  # set by gunicorn's base worker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tracker: Tracker | None = None
        self._readable: list[Any] = []
        self._answers = _Answers()

    def run(self) -> None:
        app = getattr(self, "wsgi", None)
        if (
            # The event loop this builds on (gunicorn 27's gthread); elsewhere, plain gthread.
            hasattr(ThreadWorker, "wait_for_and_dispatch_events")
            and not self.cfg.is_ssl
            and app is not None
            and hasattr(app, "extensions")
            and "tracking" in getattr(app, "blueprints", {})
        ):
            tracker = get_tracker(app)
            if tracker.buffer is not None:  # write-through mode stays on the threads
                self._tracker = tracker
        super().run()

    def accept(self, listener: Any) -> None:
        """A new connection waits in the poller like a kept-alive one, not in a thread.

        So its first request can take the shortcut too (a proxy that opens a connection per
        request, or a burst of new ones); anything else reaches a thread as before.
        """
        if self._tracker is None or not self.cfg.keepalive:
            super().accept(listener)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
        )

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        if self._tracker is None or conn.is_http2:
            super().on_client_socket_readable(conn, client)
        else:
            self._readable.append(conn)  # answered together after this poll round

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        super().wait_for_and_dispatch_events(timeout)
        if self._readable:
            ready, self._readable = self._readable, []
            try:
                self._answer(ready)
            except Exception:  # a bug here must not take the worker and its connections down
                self.log.exception("Error in the tracking shortcut.")

    def _hand_over(self, conn: Any) -> None:
        """To the thread pool, as ``gthread`` would have done (nothing was consumed)."""
        super().on_client_socket_readable(conn, conn.sock)

    def _answer(self, ready: list[Any]) -> None:
        tracker = self._tracker
        assert tracker is not None and tracker.buffer is not None
        answers: list[tuple[Any, TrackedRequest]] = []
        for conn in ready:
            request = self._peek(conn, tracker)
            if request is None:
                self._hand_over(conn)
            else:
                answers.append((conn, request))
        if not answers:
            return
        events = [request.event for _, request in answers if request.event is not None]
        if events:
            try:
                tracker.buffer.push_many(events)
            except Exception:  # Redis failing: the threads write through (fastpath.Tracker)
                log.warning(
                    "tracking buffer unavailable; handing requests to threads", exc_info=True
                )
                for conn, _ in answers:
                    self._hand_over(conn)
                return
        for conn, request in answers:
            self._reply(conn, request)

    def _peek(self, conn: Any, tracker: Tracker) -> TrackedRequest | None:
        if not tracker.switch_is_fresh():
            return None  # the switch needs a query: a thread re-reads it
        try:
            data = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            return None
        if not data or len(data) >= PEEK_BYTES:
            return None
        try:
            return parse_tracked_request(data, tracker)
        except Exception:
            log.warning("tracking shortcut failed; handing the request on", exc_info=True)
            return None

    def _reply(self, conn: Any, request: TrackedRequest) -> None:
        self.nr += 1
        close = request.close or not self.alive or self.nr >= self.max_requests
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        if request.url is None:
            answer = self._answers.pixel(head=request.head, close=close)
        else:
            answer = self._answers.click(request.url, close=close)
        try:
            taken = conn.sock.recv(request.size)  # already waiting in the kernel, all of it
            sent = conn.sock.send(answer) if len(taken) == request.size else 0
            close = close or sent != len(answer)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error answering a tracking request.")
            close = True
        if close:
            self._drop(conn)
        else:  # kept alive: still registered with the poller; a fresh timeout, last in line
            self.keepalived_conns.remove(conn)
            conn.set_timeout()
            self.keepalived_conns.append(conn)

    def _drop(self, conn: Any) -> None:
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        self.keepalived_conns.remove(conn)
        self.nr_conns -= 1
        conn.close()
