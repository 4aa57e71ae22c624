"""A private Postfix relay for tests and benchmarks: its own configuration, queue, log and ports.

It is started from Debian's ``postfix`` package with ``postfix -c <dir>`` (never the system
service), listens on a free loopback port, relays everything to one next hop on loopback (a
sink the caller runs), and writes its own log file (Postfix 3.4+ ``maillog_file``), which the
tests read to count what Postfix accepted and passed on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import free_port, need
from tests.support.smtp import SMTPSink

POSTFIX = "/usr/sbin/postfix"
DAEMONS = Path("/usr/lib/postfix/sbin")

# master.cf: every service unchrooted (the queue lives in a temporary folder), smtpd on our port.
_SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
"""


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not Path(POSTFIX).exists() or not (DAEMONS / "master").exists():
        return "Debian's postfix package is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix needs root (its master process drops to the postfix user)"
    try:
        import pwd

        pwd.getpwnam("postfix")
    except KeyError:
        return "there is no postfix user (the postfix package creates it)"
    return None


@dataclass
class Delivered:
    """What Postfix's own log says it passed to the next hop."""

    sent: Counter[str]  # Message-ID -> how many times status=sent
    deferred: int
    bounced: int


class PrivatePostfix:
    """``with PrivatePostfix(next_hop_port) as relay:`` -> ``relay.url``; stopped and removed after."""

    def __init__(
        self,
        next_hop_port: int,
        *,
        main_cf: Mapping[str, str] | None = None,
        recipient_access: Mapping[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        smtpd_options: Mapping[str, str] | None = None,
    ) -> None:
        # Not under pytest's tmp_path: that is private to root (0700), and Postfix's daemons,
        # running as the postfix user, must reach their data directory and log.
        self.folder = Path(tempfile.mkdtemp(prefix="distributor-postfix-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.conf = self.folder / "conf"
        self.queue = self.folder / "queue"
        self.data = self.folder / "data"
        self.log_path = self.folder / "postfix.log"
        self.next_hop_port = next_hop_port
        self.main_cf = dict(main_cf or {})
        self.recipient_access = dict(recipient_access or {})
        self.tls = tls
        self.smtpd_options = dict(smtpd_options or {})

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _main_cf(self) -> dict[str, str]:
        restrictions = "permit_mynetworks, reject_unauth_destination"
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "command_directory": "/usr/sbin",
            "daemon_directory": str(DAEMONS),
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.test.invalid",
            "mydomain": "test.invalid",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "local_transport": "error:local delivery is off",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "mynetworks": "127.0.0.0/8",
            "relayhost": f"[127.0.0.1]:{self.next_hop_port}",
            "smtpd_relay_restrictions": restrictions,
            "smtp_tls_security_level": "none",
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.folder),
            # Tests want answers now: no backoff past a few seconds, no DNS.
            "smtp_host_lookup": "native",
            "disable_dns_lookups": "yes",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "queue_run_delay": "2s",
            "default_destination_concurrency_limit": "20",
            "smtp_connection_cache_on_demand": "yes",
        }
        if self.recipient_access:
            settings["smtpd_recipient_restrictions"] = (
                f"check_recipient_access texthash:{self.conf / 'recipient_access'}, "
                "permit_mynetworks, reject_unauth_destination"
            )
        if self.tls is not None:
            cert, key = self.tls
            settings |= {
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": str(cert),
                "smtpd_tls_key_file": str(key),
            }
        return settings | self.main_cf

    def _write_configuration(self) -> None:
        for folder in (self.conf, self.queue, self.data):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix")
        main = "".join(f"{key} = {value}\n" for key, value in self._main_cf().items())
        (self.conf / "main.cf").write_text(main)
        options = "".join(f" -o {key}={value}" for key, value in self.smtpd_options.items())
        smtpd = f"127.0.0.1:{self.port} inet n - n - - smtpd{options}\n"
        (self.conf / "master.cf").write_text(smtpd + _SERVICES)
        if self.recipient_access:
            table = "".join(f"{addr} {action}\n" for addr, action in self.recipient_access.items())
            (self.conf / "recipient_access").write_text(table)

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # ``postfix`` reports its own errors on stderr only when stderr is a terminal; its
        # daemons log to ``maillog_file``, which is where failures are read from.
        return subprocess.run(
            [POSTFIX, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def start(self) -> None:
        self._write_configuration()
        result = self._postfix("start", check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _port_open(self.port):
                return
            time.sleep(0.1)
        log = self.log()
        self.stop()
        raise RuntimeError(f"Postfix did not start (exit {result.returncode}):\n{log[-2000:]}")

    def stop(self) -> None:
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (self.data / "master.lock").exists():
            if not _master_running(self.data / "master.lock"):
                break
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)

    def reload(self) -> None:
        self._write_configuration()
        self._postfix("reload")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queue_is_empty(self) -> bool:
        shown = subprocess.run(
            ["/usr/sbin/postqueue", "-c", str(self.conf), "-p"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return "Mail queue is empty" in shown.stdout

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_is_empty():
                return
            time.sleep(0.25)
        raise AssertionError(f"Postfix still has mail queued after {timeout}s")

    def delivered(self) -> Delivered:
        """Count, from Postfix's log, what it passed on to the next hop, by Message-ID."""
        message_ids: dict[str, str] = {}
        sent: Counter[str] = Counter()
        deferred = bounced = 0
        for line in self.log().splitlines():
            if match := _CLEANUP.search(line):
                message_ids[match["queue_id"]] = match["message_id"]
            elif match := _STATUS.search(line):
                status = match["status"]
                if status == "sent":
                    sent[message_ids.get(match["queue_id"], match["queue_id"])] += 1
                elif status == "deferred":
                    deferred += 1
                elif status == "bounced":
                    bounced += 1
        return Delivered(sent=sent, deferred=deferred, bounced=bounced)

    def smtpd_replies(self) -> list[str]:
        """The refusals smtpd logged (``NOQUEUE: reject: RCPT ...``)."""
        return [line for line in self.log().splitlines() if "reject:" in line]

    def __enter__(self) -> PrivatePostfix:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_CLEANUP = re.compile(
    r"postfix/cleanup\[\d+\]: (?P<queue_id>\w+): message-id=<?(?P<message_id>[^>\s]+)>?"
)
_STATUS = re.compile(r"postfix/smtp\[\d+\]: (?P<queue_id>\w+): to=<[^>]*>.* status=(?P<status>\w+)")


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _master_running(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture()
def postfix_sink() -> Iterator[SMTPSink]:
    """The recording sink behind a private Postfix: the witness of what the relay passed on."""
    with SMTPSink() as running:
        yield running


def private_postfix(sink: SMTPSink, **options: Any) -> PrivatePostfix:
    """A private Postfix relaying to ``sink`` (start it with ``with``); the test is skipped
    where Debian's postfix package is not installed."""
    reason = unavailable_reason()
    need(reason is None, reason or "")
    return PrivatePostfix(sink.port, **options)
