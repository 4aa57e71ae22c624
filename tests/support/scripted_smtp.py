"""A small scripted SMTP server on loopback (raw asyncio, PIPELINING, SIZE) for wire tests.

It advertises ``SIZE <limit>`` (RFC 1870) when given one, refuses a declared size over it at
MAIL FROM as Postfix does, keeps every MAIL FROM line and every byte it received, and answers
the final dot per recipient with what ``dot_reply`` says (``250`` by default). It can also
close a session left idle for ``idle_timeout`` seconds with Postfix's ``421 4.4.2``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from distributor.delivery.ratelimit import Grant
from tests.support.fake_smtp import FakeSMTPSession
from tests.support.services import free_port


class ScriptedSMTPServer:
    def __init__(
        self,
        *,
        size_limit: int | None = None,
        dot_reply: Callable[[str], bytes] | None = None,
        rcpt_reply: Callable[[str], bytes] | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.size_limit = size_limit
        self.dot_reply = dot_reply or (lambda rcpt: b"250 2.0.0 Ok: queued")
        self.rcpt_reply = rcpt_reply or (lambda rcpt: b"250 2.1.5 Ok")
        self.rcpt_lines: list[str] = []  # every RCPT TO, in order
        self.idle_timeout = idle_timeout
        self.port = free_port()
        self.mail_lines: list[bytes] = []
        self.accepted: Counter[str] = Counter()
        self.bodies_seen: Counter[str] = Counter()  # messages whose body arrived, by recipient
        self.bytes_received = 0
        self.connections = 0
        self.idle_closes = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedSMTPServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, limit=1 << 22)
        )
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _ScriptedSession(self, reader, writer).run()


class _ScriptedSession(FakeSMTPSession):
    host = b"scripted.test"

    def __init__(
        self,
        server: ScriptedSMTPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(reader, writer)
        self.server = server

    def extensions(self) -> list[bytes]:
        size = self.server.size_limit
        return [b"PIPELINING", *([b"SIZE %d" % size] if size is not None else []), b"8BITMIME"]

    async def read_command(self) -> bytes:
        server = self.server
        if server.idle_timeout is None:
            line = await self.reader.readline()
        else:
            try:
                line = await asyncio.wait_for(self.reader.readline(), server.idle_timeout)
            except TimeoutError:
                with server._lock:
                    server.idle_closes += 1
                self.reply(b"421 4.4.2 scripted.test Error: timeout exceeded")
                await self.writer.drain()
                return b""
        with server._lock:
            server.bytes_received += len(line)
        return line

    async def mail(self, sender: str, line: bytes) -> bytes:
        server = self.server
        with server._lock:
            server.mail_lines.append(line.rstrip())
        declared = _declared_size(line)
        if server.size_limit and declared is not None and declared > server.size_limit:
            return b"552 5.3.4 Message size exceeds fixed limit"
        return b"250 2.1.0 Ok"

    async def recipient(self, address: str) -> bytes:
        server = self.server
        with server._lock:
            server.rcpt_lines.append(address)
        return server.rcpt_reply(address)

    async def message(self, sender: str, rcpt: str, body: bytes) -> bytes | None:
        server = self.server
        reply = server.dot_reply(rcpt)
        with server._lock:
            server.bytes_received += len(body)
            server.bodies_seen[rcpt] += 1
            if reply.startswith(b"250"):
                server.accepted[rcpt] += 1
        return reply


def _declared_size(line: bytes) -> int | None:
    for word in line.split()[2:] if b" " in line else []:
        if word.upper().startswith(b"SIZE="):
            try:
                return int(word[5:])
            except ValueError:
                return None
    return None


class StallingLimiter:
    """Grants one message per domain, then nothing for ``stall`` seconds (every lane's session
    sits idle), then everything."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.resume_at: float | None = None

    def acquire(self, lease_id: str, wanted: Mapping[str, int]) -> Grant:
        if self.resume_at is None:
            self.resume_at = time.monotonic() + self.stall
            return Grant({domain: min(count, 1) for domain, count in wanted.items()})
        if time.monotonic() < self.resume_at:
            return Grant(dict.fromkeys(wanted, 0))
        return Grant(dict(wanted))

    def end_lease(self, lease_id: str, domains: list[str]) -> None:
        pass

    def back_off(self, domain: str) -> None:
        pass
