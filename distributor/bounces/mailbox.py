"""Polling a bounce mailbox over IMAP or POP3 (stdlib ``imaplib``/``poplib``).

``BOUNCE_MAILBOX_URL`` is ``imaps://user:pass@host[:port]/INBOX`` (or ``imap://``, ``pop3s://``,
``pop3://``). Each message is stored and processed in its own committed transaction and only
then deleted from the mailbox, so a crash in between leaves it there and the next poll finds
it again; the dedupe key makes that second copy a no-op.
"""

from __future__ import annotations

import imaplib
import poplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from distributor.bounces.services import receive_message
from distributor.db import Database
from distributor.errors import ValidationFailed
from distributor.logs import get_logger
from distributor.settings import Settings

log = get_logger(__name__)

_DEFAULT_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}


@dataclass(frozen=True)
class MailboxConfig:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"

    @property
    def protocol(self) -> str:
        return "imap" if self.scheme.startswith("imap") else "pop3"

    @property
    def is_tls(self) -> bool:
        return self.scheme.endswith("s")


def parse_mailbox_url(url: str) -> MailboxConfig:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValidationFailed("BOUNCE_MAILBOX_URL must start with imap(s):// or pop3(s)://")
    if not parts.hostname or parts.username is None:
        raise ValidationFailed("BOUNCE_MAILBOX_URL needs user:password@host")
    return MailboxConfig(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


@dataclass
class PollResult:
    fetched: int = 0
    deleted: int = 0
    failed: int = 0


Store = Callable[[bytes], None]


def _store_with(db: Database, settings: Settings, source: str) -> Store:
    def store(raw: bytes) -> None:
        with db.session() as session, session.begin():
            inbound = receive_message(session, settings, source=source, raw=raw)
            log.info(
                "bounces.mailbox.message",
                id=inbound.id,
                classification=inbound.classification.value,
            )

    return store


@contextmanager
def _imap(config: MailboxConfig, timeout: float) -> Iterator[imaplib.IMAP4]:
    client: imaplib.IMAP4
    if config.is_tls:
        client = imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=ssl.create_default_context(), timeout=timeout
        )
    else:
        client = imaplib.IMAP4(config.host, config.port, timeout=timeout)
    try:
        client.login(config.username, config.password)
        yield client
    finally:
        with suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def _poll_imap(config: MailboxConfig, store: Store, limit: int, timeout: float) -> PollResult:
    result = PollResult()
    with _imap(config, timeout) as client:
        status, _ = client.select(config.folder)
        if status != "OK":
            raise ValidationFailed(f"cannot open mailbox folder {config.folder!r}")
        _, data = client.uid("SEARCH", "UNDELETED")
        uids = [u.decode("ascii") for u in (data[0] or b"").split()[:limit]]
        for uid in uids:
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if raw is None:
                continue
            result.fetched += 1
            try:
                store(raw)
            except Exception:
                result.failed += 1
                log.exception("bounces.mailbox.store_failed", uid=uid)
                continue
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            result.deleted += 1
        if result.deleted:
            client.expunge()
    return result


def _poll_pop3(config: MailboxConfig, store: Store, limit: int, timeout: float) -> PollResult:
    result = PollResult()
    client: poplib.POP3
    if config.is_tls:
        client = poplib.POP3_SSL(
            config.host, config.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = poplib.POP3(config.host, config.port, timeout=timeout)
    try:
        client.user(config.username)
        client.pass_(config.password)
        count, _size = client.stat()
        for number in range(1, min(count, limit) + 1):
            _resp, lines, _octets = client.retr(number)
            result.fetched += 1
            try:
                store(b"\r\n".join(lines) + b"\r\n")
            except Exception:
                result.failed += 1
                log.exception("bounces.mailbox.store_failed", number=number)
                continue
            client.dele(number)
            result.deleted += 1
        client.quit()  # deletions take effect only at QUIT (RFC 1939 6)
    except BaseException:
        client.close()
        raise
    return result


def poll_mailbox(
    db: Database,
    settings: Settings,
    *,
    url: str | None = None,
    limit: int = 200,
    timeout: float = 30.0,
) -> PollResult:
    """Fetch, store, process and delete up to ``limit`` messages from the bounce mailbox."""
    config = parse_mailbox_url(url or settings.bounce_mailbox_url)
    store = _store_with(db, settings, config.protocol)
    if config.protocol == "imap":
        result = _poll_imap(config, store, limit, timeout)
    else:
        result = _poll_pop3(config, store, limit, timeout)
    log.info(
        "bounces.mailbox.polled",
        protocol=config.protocol,
        fetched=result.fetched,
        deleted=result.deleted,
        failed=result.failed,
    )
    return result
