"""The inbound SMTP receiver for the bounce domain (aiosmtpd).

It accepts mail only for addresses at ``BOUNCE_DOMAIN`` and never forwards anything, so it
cannot be used as a relay. Each message is stored raw in one transaction and answered ``250``
at once; it is read afterwards, one at a time on a thread of its own, in a second
transaction. Anyone can mail the bounce domain, so no message may hold the SMTP answer
hostage to its parsing (RFC 5321 4.5.3.2.6 gives the client 10 minutes for the final reply;
real clients give up sooner). A processing error, or a receiver stopped before it got to a
message, leaves a stored row that the ``process_pending`` sweep reads later, and the sender
still gets its 250 (a bounce must never bounce).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from distributor.bounces.services import process_inbound, store_inbound
from distributor.db import Database
from distributor.logs import get_logger
from distributor.settings import Settings

log = get_logger(__name__)

MAX_RECIPIENTS = 20
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def is_bounce_address(address: str, bounce_domain: str) -> bool:
    """True for ``anything@<bounce domain>``; source routes and other domains are refused."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local or any(c in local for c in "@%!:,"):
        return False
    return domain.lower().rstrip(".") == bounce_domain.lower().rstrip(".")


class BounceHandler:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # One reader at a time: a burst of large reports queues here, not on the SMTP side.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bounce-reader")

    def close(self) -> None:
        """Finish reading what was accepted (the sweep would otherwise get it later)."""
        self._reader.shutdown(wait=True)

    async def handle_RCPT(
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _options: Any
    ) -> str:
        if not is_bounce_address(address, self.settings.bounce_domain):
            return "550 5.7.1 Relaying denied: this server only accepts mail for its own domain"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = str(envelope.mail_from or "")
        rcpts = [str(r) for r in envelope.rcpt_tos]
        loop = asyncio.get_running_loop()
        try:
            inbound_id = await loop.run_in_executor(None, self._store, raw, mail_from, rcpts)
        except Exception:
            log.exception("bounces.store_failed", size=len(raw))
            return "451 4.3.0 Could not store the message; try again later"
        self._reader.submit(self._process, inbound_id)
        return "250 2.0.0 Accepted"

    def _store(self, raw: bytes, mail_from: str, rcpts: list[str]) -> int:
        with self.db.session() as session, session.begin():
            inbound, created = store_inbound(
                session,
                source="smtp",
                raw=raw,
                envelope_from=mail_from,
                envelope_to=",".join(rcpts),
            )
            log.info("bounces.received", id=inbound.id, created=created, size=len(raw))
            return inbound.id

    def _process(self, inbound_id: int) -> None:
        from distributor.bounces.models import InboundMessage

        try:
            with self.db.session() as session, session.begin():
                # Locked while it is read: the pending sweep skips it meanwhile.
                inbound = session.get(InboundMessage, inbound_id, with_for_update=True)
                if inbound is not None:
                    process_inbound(session, self.settings, inbound)
                    log.info(
                        "bounces.processed",
                        id=inbound_id,
                        classification=inbound.classification.value,
                    )
        except Exception:
            # Kept raw; the periodic process_pending sweep tries again.
            log.exception("bounces.process_failed", id=inbound_id)


class BounceController(Controller):
    """The aiosmtpd controller; stopping it also finishes reading what was accepted."""

    handler: BounceHandler

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert=no_assert)
        self.handler.close()


def make_controller(db: Database, settings: Settings, host: str, port: int) -> Controller:
    controller: Controller = BounceController(
        BounceHandler(db, settings),
        hostname=host,
        port=port,
        decode_data=False,
        data_size_limit=MAX_MESSAGE_BYTES,
        server_hostname=settings.bounce_domain,
    )
    return controller


def serve_forever(db: Database, settings: Settings, host: str, port: int) -> None:
    """Run the bounce receiver until SIGINT or SIGTERM."""
    controller = make_controller(db, settings, host, port)
    controller.start()
    log.info("bounces.listening", host=host, port=port, domain=settings.bounce_domain)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    controller.stop()
    log.info("bounces.stopped")
