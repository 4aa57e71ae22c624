"""The independent SMTP sink of ``make chaos``: it writes down every message it accepts, then
answers.

It runs as a process of its own (``python -m benchmarks.chaos.sink``), so killing workers,
Redis or the database never touches it. Every accepted message is appended to a journal file
and the file is fsync'd BEFORE the 250 goes out (group commit: the sessions waiting at the
same moment share one fsync), so the journal holds at least every message a client was told
was delivered, plus the ones dropped after the final dot (RFC 1047: the server got them, the
client cannot know).

Journal lines, tab-separated:

    A <verp token> <recipient> <Message-ID>      accepted (before the 250, or before a drop)
    D <verp token> <recipient> <Message-ID>      the connection was then dropped on purpose
    R <stage> <code> <recipient or sender>       refused (451 / 550 5.1.1 at RCPT, 5.1.8 at MAIL)
    B                                            a connection blackholed

Faults come from a JSON control file, re-read when it changes (``SinkFaults``):
``mode`` normal | sender_refused (550 5.1.8 at MAIL FROM) | blackhole (new connections are
accepted and never greeted; sessions already open get 421 at their next command and are
closed), and per recipient (chosen by a CRC of the address, so each run picks the same ones):
``tempfail_every`` (451 4.3.0 at RCPT, the first time only), ``hardfail_every`` (550 5.1.1 at
RCPT, always), ``drop_every`` (journal it, then drop the connection without a reply), and
``reply_delay`` (seconds before each reply to the final dot: a slow relay).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from typing_extensions import override

from tests.support.fake_smtp import FakeSMTPSession


@dataclass
class SinkFaults:
    mode: str = "normal"
    tempfail_every: int = 0
    hardfail_every: int = 0
    drop_every: int = 0
    reply_delay: float = 0.0

    def write(self, path: Path) -> None:
        """Replace the control file atomically (the sink polls its mtime)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


def picked(address: str, every: int, salt: bytes) -> bool:
    """Whether ``address`` is one of the recipients a per-recipient fault applies to."""
    if every <= 0:
        return False
    return zlib.crc32(salt + address.lower().encode()) % every == 0


class Journal:
    """Append-only, fsync'd before anyone is answered; one fsync per group of waiters."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self.wakeup = asyncio.Event()

    async def append(self, line: bytes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((line, future))
        self.wakeup.set()
        await future

    def _write(self, data: bytes) -> None:
        os.write(self.fd, data)
        os.fsync(self.fd)

    async def run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            group, self.pending = self.pending, []
            if not group:
                continue
            await asyncio.to_thread(self._write, b"".join(line for line, _ in group))
            for _, future in group:
                if not future.done():
                    future.set_result(None)


def _field(value: str) -> bytes:
    return value.replace("\t", " ").replace("\n", " ").encode("utf-8", "replace")


def _message_id(body: bytes) -> str:
    head = b"\r\n" + body[: body.find(b"\r\n\r\n")]
    at = head.lower().find(b"\r\nmessage-id:")
    if at < 0:
        return ""
    end = head.find(b"\r\n", at + 2)
    return head[at + 13 : end if end > 0 else None].strip().decode("ascii", "replace")


def _verp_token(sender: str) -> str:
    local = sender.partition("@")[0]
    return local.partition("+")[2]


class Sink:
    def __init__(self, journal: Journal, control: Path) -> None:
        self.journal = journal
        self.control = control
        self.faults = SinkFaults()
        self._mtime = 0.0
        self._tempfailed: set[str] = set()
        self.sessions: set[asyncio.StreamWriter] = set()

    async def watch_control(self) -> None:
        while True:
            try:
                mtime = self.control.stat().st_mtime
                if mtime != self._mtime:
                    self._mtime = mtime
                    self.faults = SinkFaults(**json.loads(self.control.read_text()))
            except (OSError, ValueError, TypeError):
                pass
            await asyncio.sleep(0.05)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions.add(writer)
        try:
            if self.faults.mode == "blackhole":
                # Accepted by the kernel, never greeted: the client waits for its timeout.
                await self.journal.append(b"B\n")
                while self.faults.mode == "blackhole":
                    await asyncio.sleep(0.1)
                return
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.sessions.discard(writer)
            writer.transport.abort()

    async def _refuse(self, stage: str, code: int, who: str) -> None:
        await self.journal.append(b"R\t" + _field(stage) + b"\t%d\t" % code + _field(who) + b"\n")

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _SinkSession(self, reader, writer).run()


class _SinkSession(FakeSMTPSession):
    host = b"chaos-sink.test"

    def __init__(
        self, sink: Sink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.sink = sink

    @override
    async def read_command(self) -> bytes:
        line = await self.reader.readline()
        if line and self.sink.faults.mode == "blackhole":
            self.reply(b"421 4.3.2 Service shutting down")
            await self.writer.drain()
            return b""
        return line

    @override
    async def mail(self, sender: str, line: bytes) -> bytes:
        if self.sink.faults.mode != "sender_refused":
            return b"250 2.1.0 Ok"
        await self.sink._refuse("mail", 550, sender)
        return b"550 5.1.8 <" + sender.encode() + b">: Sender address rejected: Domain not found"

    @override
    async def recipient(self, address: str) -> bytes:
        sink, faults = self.sink, self.sink.faults
        if picked(address, faults.hardfail_every, b"hard"):
            await sink._refuse("rcpt", 550, address)
            return b"550 5.1.1 <" + address.encode() + b">: User unknown"
        if picked(address, faults.tempfail_every, b"temp") and address not in sink._tempfailed:
            sink._tempfailed.add(address)
            await sink._refuse("rcpt", 451, address)
            return b"451 4.3.0 Temporary failure, try again later"
        return b"250 2.1.5 Ok"

    @override
    async def message(self, sender: str, rcpt: str, body: bytes) -> bytes | None:
        faults = self.sink.faults
        fields = _field(_verp_token(sender)) + b"\t" + _field(rcpt) + b"\t"
        fields += _field(_message_id(body))
        is_dropped = picked(rcpt, faults.drop_every, b"drop")
        record = b"A\t" + fields + b"\n"
        if is_dropped:
            record += b"D\t" + fields + b"\n"
        await self.sink.journal.append(record)
        if is_dropped:
            return None  # RFC 1047: received, and the client never hears so
        if faults.reply_delay:
            await asyncio.sleep(faults.reply_delay)
        return b"250 2.0.0 Ok: queued"


async def serve(hosts: list[str], port: int, journal_path: Path, control: Path) -> None:
    journal = Journal(journal_path)
    sink = Sink(journal, control)
    server = await asyncio.start_server(sink.handle, hosts, port, limit=1 << 22, backlog=512)
    tasks = [asyncio.create_task(journal.run()), asyncio.create_task(sink.watch_control())]
    Path(str(journal_path) + ".ready").write_text(str(os.getpid()))
    async with server:
        await server.serve_forever()
    for task in tasks:
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="the recording SMTP sink of make chaos")
    parser.add_argument("--host", action="append", default=[])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host or ["127.0.0.1"], args.port, args.journal, args.control))


if __name__ == "__main__":
    main()
