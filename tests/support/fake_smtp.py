"""The command loop of our fake SMTP servers (the tests' and ``make chaos``'s), written once.

A server says what MAIL FROM, RCPT TO and each message get (the hooks of ``FakeSMTPSession``);
the loop reads one command a line, pipelined or not (RFC 2920), answers EHLO, DATA's 354, RSET,
NOOP, QUIT and unknown verbs with Postfix's words, and writes its replies out once per
pipelined group, as Postfix does.
"""

from __future__ import annotations

import asyncio


def mailbox(argument: bytes) -> str:
    """The address in ``<address> [parameters]``, the argument of MAIL FROM: and RCPT TO:
    (RFC 5321 4.1.2)."""
    return argument.strip().partition(b">")[0].lstrip(b"<").decode("utf-8", "replace")


def has_pipelined_input(reader: asyncio.StreamReader) -> bool:
    """Whether more of the client's pipelined group (RFC 2920) has already arrived, so its
    replies may wait to go out together. asyncio has no public way to ask: ``_buffer`` is the
    bytes a StreamReader holds (CPython), untyped in typeshed, hence ``getattr``."""
    buffered: bytearray = getattr(reader, "_buffer")
    return bool(buffered)


class FakeSMTPSession:
    """One SMTP session of a fake server. Subclasses override the hooks; every reply the loop
    writes itself is Postfix's."""

    host = b"fake.test"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sender: str | None = None  # the transaction's accepted MAIL FROM
        self.rcpt: str | None = None  # the transaction's accepted recipient

    # -- hooks ---------------------------------------------------------------------------------

    def extensions(self) -> list[bytes]:
        """The EHLO keywords after the greeting line."""
        return [b"PIPELINING", b"8BITMIME"]

    async def read_command(self) -> bytes:
        """The next command line; empty when the session ends."""
        return await self.reader.readline()

    async def mail(self, sender: str, line: bytes) -> bytes:
        """The reply to ``MAIL FROM`` (``line`` whole, with its parameters)."""
        return b"250 2.1.0 Ok"

    async def recipient(self, address: str) -> bytes:
        """The reply to ``RCPT TO`` after an accepted ``MAIL FROM``."""
        return b"250 2.1.5 Ok"

    async def message(self, sender: str, rcpt: str, body: bytes) -> bytes | None:
        """The reply to the final dot; None drops the connection without one."""
        return b"250 2.0.0 Ok: queued"

    # -- the loop ------------------------------------------------------------------------------

    def reply(self, line: bytes) -> None:
        self.writer.write(line + b"\r\n")

    async def run(self) -> None:
        self.reply(b"220 " + self.host + b" ESMTP")
        while True:
            line = await self.read_command()
            if not line or not await self.answer(line):
                return
            if not has_pipelined_input(self.reader):
                await self.writer.drain()

    async def answer(self, line: bytes) -> bool:
        """Answer one command; False when the session is over."""
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            keywords = [self.host, *self.extensions()]
            self.reply(
                b"\r\n".join(b"250-" + k for k in keywords[:-1]) + b"\r\n250 " + keywords[-1]
            )
        elif verb == b"MAIL":
            sender = mailbox(line[10:])
            self.rcpt = None
            reply = await self.mail(sender, line)
            self.sender = sender if reply.startswith(b"250") else None
            self.reply(reply)
        elif verb == b"RCPT":
            await self._recipient(mailbox(line[8:]))
        elif verb == b"DATA":
            return await self._data()
        elif verb == b"RSET":
            self.sender = self.rcpt = None
            self.reply(b"250 2.0.0 Ok")
        elif verb == b"NOOP":
            self.reply(b"250 2.0.0 Ok")
        elif verb == b"QUIT":
            self.reply(b"221 2.0.0 Bye")
            await self.writer.drain()
            return False
        else:
            self.reply(b"502 5.5.2 Error: command not recognized")
        return True

    async def _recipient(self, address: str) -> None:
        if self.sender is None:
            self.reply(b"503 5.5.1 Error: need MAIL command")
            return
        reply = await self.recipient(address)
        if reply.startswith(b"250"):
            self.rcpt = address
        self.reply(reply)

    async def _data(self) -> bool:
        if self.rcpt is None:
            self.reply(b"554 5.5.1 Error: no valid recipients")
            return True
        self.reply(b"354 End data with <CR><LF>.<CR><LF>")
        await self.writer.drain()
        body = await self.reader.readuntil(b"\r\n.\r\n")
        sender, rcpt = self.sender or "", self.rcpt
        self.sender = self.rcpt = None
        reply = await self.message(sender, rcpt, body)
        if reply is None:
            self.writer.transport.abort()
            return False
        self.reply(reply)
        return True
