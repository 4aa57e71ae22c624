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
from tests.support.services import free_port


class ScriptedSMTPServer:
    def __init__(
        self,
        *,
        size_limit: int | None = None,
        dot_reply: Callable[[str], bytes] | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.size_limit = size_limit
        self.dot_reply = dot_reply or (lambda rcpt: b"250 2.0.0 Ok: queued")
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

    async def _readline(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        if self.idle_timeout is None:
            return await reader.readline()
        try:
            return await asyncio.wait_for(reader.readline(), self.idle_timeout)
        except TimeoutError:
            with self._lock:
                self.idle_closes += 1
            writer.write(b"421 4.4.2 scripted.test Error: timeout exceeded\r\n")
            await writer.drain()
            return b""

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted.test ESMTP\r\n")
        rcpt: str | None = None
        has_sender = False
        while True:
            line = await self._readline(reader, writer)
            if not line:
                return
            with self._lock:
                self.bytes_received += len(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                size = b"250-SIZE %d\r\n" % self.size_limit if self.size_limit is not None else b""
                writer.write(
                    b"250-scripted.test\r\n250-PIPELINING\r\n" + size + b"250 8BITMIME\r\n"
                )
            elif verb == b"MAIL":
                with self._lock:
                    self.mail_lines.append(line.rstrip())
                declared = _declared_size(line)
                if self.size_limit and declared is not None and declared > self.size_limit:
                    has_sender = False
                    writer.write(b"552 5.3.4 Message size exceeds fixed limit\r\n")
                else:
                    has_sender = True
                    writer.write(b"250 2.1.0 Ok\r\n")
                rcpt = None
            elif verb == b"RCPT":
                if not has_sender:
                    writer.write(b"503 5.5.1 Error: need MAIL command\r\n")
                else:
                    rcpt = line[8:].strip().strip(b"<>").decode()
                    writer.write(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                if rcpt is None:
                    writer.write(b"554 5.5.1 Error: no valid recipients\r\n")
                    continue
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                body = await reader.readuntil(b"\r\n.\r\n")
                reply = self.dot_reply(rcpt)
                with self._lock:
                    self.bytes_received += len(body)
                    self.bodies_seen[rcpt] += 1
                    if reply.startswith(b"250"):
                        self.accepted[rcpt] += 1
                writer.write(reply + b"\r\n")
                rcpt, has_sender = None, False
            elif verb in (b"RSET", b"NOOP"):
                rcpt, has_sender = None, False
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            if not reader._buffer:  # type: ignore[attr-defined]  # flush once per pipelined group
                await writer.drain()


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
