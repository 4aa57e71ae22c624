"""A scriptable SMTP server on loopback (raw asyncio, PIPELINING) for delivery fault tests.

It counts messages per recipient and can, for chosen recipients: answer 451 the first time,
answer 550 5.1.1, answer 421 4.7.0, or drop the connection after DATA's final dot without a
reply (the message counts as received: the server got it, the client cannot know).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.fake_smtp import FakeSMTPSession
from tests.support.services import free_port


@dataclass
class Script:
    temp_fail_once: set[str] = field(default_factory=set)
    hard_fail: set[str] = field(default_factory=set)
    throttle: set[str] = field(default_factory=set)  # 421: the relay closes the session
    greylist: set[str] = field(default_factory=set)  # 451 4.7.1 at RCPT: the domain says wait
    drop_after_dot: set[str] = field(default_factory=set)
    reply_delay: float = 0.0  # seconds before each reply to the final dot
    refuse_sender: bool = False  # 550 5.1.8 at MAIL FROM (e.g. the bounce domain's DNS is down)
    # Amazon SES: more than this many messages in one second are refused after DATA with
    # "454 Throttling failure: Maximum sending rate exceeded." (0: no limit).
    max_per_second: int = 0
    # More connections than this at once get "421 4.7.0 Too many connections" (0: no limit).
    max_connections: int = 0


class FaultySMTPServer:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.port = free_port()
        self.received: Counter[str] = Counter()
        self.envelope_senders: list[str] = []
        self.samples: dict[str, bytes] = {}
        self.refused: Counter[str] = Counter()
        self.open_connections = 0
        self.max_open_connections = 0
        self.connections_seen = 0
        # recipient -> the connections (numbered in order of arrival) that delivered to it
        self.connection_of: dict[str, list[int]] = {}
        self._tempfailed: set[str] = set()
        self.throttled = 0  # 454s answered after DATA
        self.turned_away = 0  # 421s answered at connect
        self._second = 0
        self._in_second = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.received.values())

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.received)

    def wait_for_total(self, count: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.total >= count:
                return self.total
            time.sleep(0.02)
        return self.total

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FaultySMTPServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, limit=1 << 20)
        )
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.close()

    # -- protocol ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.open_connections += 1
            self.max_open_connections = max(self.max_open_connections, self.open_connections)
            self.connections_seen += 1
            number = self.connections_seen
        try:
            await self._session(reader, writer, number)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with self._lock:
                self.open_connections -= 1
            writer.close()

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        script = self.script
        if script.max_connections and self.open_connections > script.max_connections:
            with self._lock:
                self.turned_away += 1
            writer.write(b"421 4.7.0 faulty.test Error: too many connections from 127.0.0.1\r\n")
            await writer.drain()
            return
        await _FaultySession(self, reader, writer, number).run()

    def _within_rate(self) -> bool:
        with self._lock:
            second = int(time.monotonic())
            if second != self._second:
                self._second, self._in_second = second, 0
            if self._in_second >= self.script.max_per_second:
                self.throttled += 1
                return False
            self._in_second += 1
            return True

    def _rcpt_reply(self, address: str) -> bytes:
        script = self.script
        with self._lock:
            if address in script.hard_fail:
                self.refused[address] += 1
                return b"550 5.1.1 <" + address.encode() + b">: Recipient address rejected\r\n"
            if address in script.throttle:
                self.refused[address] += 1
                return b"421 4.7.0 Try again later, slow down\r\n"
            if address in script.greylist:
                self.refused[address] += 1
                return b"451 4.7.1 <" + address.encode() + b">: Greylisted, try later\r\n"
            if address in script.temp_fail_once and address not in self._tempfailed:
                self._tempfailed.add(address)
                self.refused[address] += 1
                return b"451 4.3.0 Temporary failure, try again\r\n"
        return b"250 2.1.5 Ok\r\n"


class _FaultySession(FakeSMTPSession):
    host = b"faulty.test"

    def __init__(
        self,
        server: FaultySMTPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.number = number  # the connection's, in order of arrival

    async def mail(self, sender: str, line: bytes) -> bytes:
        if self.server.script.refuse_sender:
            return b"550 5.1.8 Sender address rejected: Domain not found"
        return b"250 2.1.0 Ok"

    async def recipient(self, address: str) -> bytes:
        return self.server._rcpt_reply(address).rstrip(b"\r\n")

    async def message(self, sender: str, rcpt: str, body: bytes) -> bytes | None:
        server, script = self.server, self.server.script
        if script.max_per_second and not server._within_rate():
            return b"454 Throttling failure: Maximum sending rate exceeded."
        with server._lock:
            server.received[rcpt] += 1
            server.connection_of.setdefault(rcpt, []).append(self.number)
            server.envelope_senders.append(sender)
            if len(server.samples) < 50:
                server.samples[rcpt] = body
        if rcpt in script.drop_after_dot:
            return None
        if script.reply_delay:
            await asyncio.sleep(script.reply_delay)
        return b"250 2.0.0 Ok: queued"
