"""A real SMTP server on loopback for tests (aiosmtpd), keeping what it receives."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.services import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # e.g. SMTPUTF8, BODY=8BITMIME

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    raw,
                    list(envelope.mail_options or []),
                )
            )
        return "250 OK"


class SMTPSink:
    def __init__(self, **controller_options: Any) -> None:
        """``controller_options`` go to aiosmtpd's Controller (TLS, authentication...)."""
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **controller_options
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, got {len(self.received)} in {timeout}s")

    def __enter__(self) -> SMTPSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
