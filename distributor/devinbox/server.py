"""The development SMTP server: every message it accepts goes into ``dev_messages``."""

from __future__ import annotations

import signal
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from distributor.db import Database
from distributor.devinbox.services import store_message
from distributor.logs import get_logger

log = get_logger(__name__)


class InboxHandler:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        rcpts = [str(r) for r in envelope.rcpt_tos]
        with self.db.session() as db_session, db_session.begin():
            message = store_message(
                db_session, mail_from=str(envelope.mail_from), rcpt_to=rcpts, raw=raw
            )
        log.info("devinbox.received", id=message.id, rcpt=rcpts, size=len(raw))
        return "250 Message accepted for delivery"


def make_controller(db: Database, host: str, port: int) -> Controller:
    controller: Controller = Controller(
        InboxHandler(db),
        hostname=host,
        port=port,
        decode_data=False,
        data_size_limit=50 * 1024 * 1024,
    )
    return controller


def serve_forever(db: Database, host: str, port: int) -> None:
    """Run the dev inbox until SIGINT or SIGTERM."""
    controller = make_controller(db, host, port)
    controller.start()
    log.info("devinbox.listening", host=host, port=port)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    controller.stop()
    log.info("devinbox.stopped")
