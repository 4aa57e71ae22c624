"""A lean HTTP/1.1 load generator for ``bench_tracking``, run in a process of its own.

One thread, non-blocking sockets on ``epoll``, requests encoded once before the clock starts,
one request in flight per keep-alive connection (no pipelining). Two modes:

- open loop (``due``): request ``i`` is due at ``start + i * interval`` and goes on connection
  ``i % connections``; a connection still waiting for an answer queues it, and its latency is
  counted from when it was due, so a server that falls behind cannot slow the arrivals down
  (the coordinated-omission trap);
- closed loop: every connection sends its next request as soon as the previous answer is in,
  until the list or the time runs out; latency from sending.

Run as ``python -m benchmarks.http_load`` with a JSON job on stdin; it prints one JSON result
(latencies in seconds, statuses, counts of answered real tokens, errors, and its own CPU
seconds during the load) so that its CPU is measured apart from the server's and from the
benchmark's flusher, and a Python flusher's pauses cannot stall the clock of the client.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from collections import deque
from typing import Any

HEADER_END = b"\r\n\r\n"


class _Conn:
    __slots__ = ("buf", "pending", "sock", "started", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.pending: deque[int] = deque()  # request indexes due but not yet sent
        self.waiting = -1  # index of the request in flight, -1 when idle
        self.started = 0.0  # when that request was due (open loop) or sent (closed loop)


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _parse(buf: bytes) -> tuple[int, bool, int] | None:
    """(status, close, bytes used) of the first complete response in ``buf``, or None."""
    end = buf.find(HEADER_END)
    if end < 0:
        return None
    head = buf[:end].lower()
    status = int(head[9:12])
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
    used = end + 4 + length
    if len(buf) < used:
        return None
    return status, b"\r\nconnection: close" in head, used


class Load:
    """One run of the generator over a list of requests (see the module docstring)."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.host, self.port = job["host"], int(job["port"])
        agent = job["user_agent"]
        paths: list[str] = job["paths"]
        self.real: list[bool] = job.get("real") or [True] * len(paths)
        self.connections = min(int(job["connections"]), len(paths)) or 1
        # Seconds between arrivals: open loop; None: closed loop.
        self.interval: float | None = job.get("interval")
        self.seconds = float(job.get("seconds") or 1e9)
        self.grace = float(job.get("grace", 120.0))  # open loop: how long to wait for answers
        self.requests = [
            f"GET {p} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: {agent}\r\n"
            f"Accept: */*\r\n\r\n".encode()
            for p in paths
        ]
        self.total = len(self.requests)
        self.latencies: list[float] = []
        self.status: dict[int, int] = {}
        self.acknowledged = 0
        self.errors = 0
        self.outstanding = self.total  # neither answered nor given up on
        self.next_index = 0  # the next request to send (closed loop) or to fall due (open)
        self.poller = select.epoll()
        self.conns: list[_Conn] = []
        self.by_fd: dict[int, _Conn] = {}
        self.start = 0.0
        self.deadline = 0.0

    def _open(self, slot: int) -> _Conn:
        conn = _Conn(_connect(self.host, self.port))
        if slot < len(self.conns):
            self.conns[slot] = conn
        else:
            self.conns.append(conn)
        self.by_fd[conn.sock.fileno()] = conn
        self.poller.register(conn.sock.fileno(), select.EPOLLIN)
        return conn

    def _reconnect(self, conn: _Conn) -> _Conn:
        self.poller.unregister(conn.sock.fileno())
        del self.by_fd[conn.sock.fileno()]
        conn.sock.close()
        fresh = self._open(self.conns.index(conn))
        fresh.pending = conn.pending
        return fresh

    def _send(self, conn: _Conn, index: int, now: float) -> None:
        conn.waiting = index
        conn.started = self.start + index * self.interval if self.interval is not None else now
        try:
            conn.sock.send(self.requests[index])  # a few dozen bytes: fits any socket buffer
        except OSError:
            self.errors += 1
            self.outstanding -= 1
            conn.waiting = -1

    def _next(self, conn: _Conn, now: float) -> None:
        """Send what this idle connection has to send next, if anything."""
        if conn.pending:
            self._send(conn, conn.pending.popleft(), now)
        elif self.interval is None and self.next_index < self.total and now < self.deadline:
            self._send(conn, self.next_index, now)
            self.next_index += 1

    def _arrivals(self, now: float) -> float:
        """Open loop: send or queue what fell due; the seconds until the next arrival."""
        assert self.interval is not None
        while self.next_index < self.total and self.start + self.next_index * self.interval <= now:
            conn = self.conns[self.next_index % self.connections]
            if conn.waiting < 0:
                self._send(conn, self.next_index, now)
            else:
                conn.pending.append(self.next_index)
            self.next_index += 1
        if self.next_index >= self.total:
            return 1.0
        return max(0.0, self.start + self.next_index * self.interval - time.perf_counter())

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # closed by the server: what was in flight got no answer
            if conn.waiting >= 0:
                self.errors += 1
                self.outstanding -= 1
                conn.waiting = -1
            self._next(self._reconnect(conn), time.perf_counter())
            return
        conn.buf += data
        while conn.waiting >= 0 and (parsed := _parse(conn.buf)) is not None:
            code, close, used = parsed
            done = time.perf_counter()
            conn.buf = conn.buf[used:]
            self.latencies.append(done - conn.started)
            self.status[code] = self.status.get(code, 0) + 1
            if self.real[conn.waiting] and code in (200, 302):
                self.acknowledged += 1
            self.outstanding -= 1
            conn.waiting = -1
            if close:
                conn = self._reconnect(conn)
            self._next(conn, done)

    def run(self) -> dict[str, Any]:
        for slot in range(self.connections):
            self._open(slot)
        cpu_started = time.process_time()
        self.start = time.perf_counter() + 0.2
        if self.interval is None:
            self.deadline = self.start + self.seconds
            time.sleep(0.2)
            for conn in self.conns:  # closed loop: every connection starts at once
                self._next(conn, time.perf_counter())
        else:  # what has no answer this long after the last arrival is lost
            self.deadline = self.start + self.total * self.interval + self.grace
        while self.outstanding > 0:
            now = time.perf_counter()
            if now > self.deadline:
                break
            timeout = self._arrivals(now) if self.interval is not None else 1.0
            for fd, _ in self.poller.poll(timeout):
                self._readable(self.by_fd[fd])
            if self.interval is None and all(c.waiting < 0 for c in self.conns):
                break  # closed loop: the list or the time ran out
        elapsed = time.perf_counter() - self.start
        if self.interval is not None:  # no answer by the deadline: in flight, queued, not due
            self.errors += self.outstanding
        cpu = time.process_time() - cpu_started
        for conn in self.conns:
            conn.sock.close()
        return {
            "latencies": self.latencies,
            "status": self.status,
            "acknowledged": self.acknowledged,
            "errors": self.errors,
            "elapsed": elapsed,
            "cpu": cpu,
        }


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(Load(job).run(), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
