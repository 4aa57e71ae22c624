"""One SMTP session with a relay: connect, TLS, EHLO, AUTH, and reading replies.

Written once for every mail we send: the bulk client (``distributor.delivery.smtp_client``)
adds pipelined messages on top of it, the transactional transport (``transport.SMTPTransport``)
sends one message at a time through it, and the startup relay check opens a session with it.
So ``SMTP_URL``'s TLS options (``ca_file``, ``tls_min``) and the wording of a certificate
failure are the same wherever mail leaves.

Sources: RFC 5321 (the session), RFC 3207 (STARTTLS), RFC 4954 (AUTH PLAIN/LOGIN), RFC 1870
(the SIZE extension's limit, read from EHLO).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import select
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from distributor.mail.outcomes import Reply, Stage
from distributor.settings import default_helo_name

_TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_TRUE = {"1", "true", "yes", "required", "on"}


@dataclass(frozen=True)
class SMTPConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_ssl: bool = False  # implicit TLS (smtps://, port 465)
    starttls: bool = False  # STARTTLS required (RFC 3207): never send in plaintext
    timeout: float = 30.0
    weight: int = 1
    helo_name: str = ""  # SMTP_HELO_NAME (Settings.helo_name); set by parse_smtp_urls
    ca_file: str = ""  # PEM file of the CAs that vouch for the relay (else the system's)
    tls_min: str = ""  # lowest TLS version accepted ("1.2", "1.3"); else Python's default

    @classmethod
    def from_url(cls, url: str) -> SMTPConfig:
        """Parse ``smtp://user:pass@host:port?starttls=required&ca_file=/ca.pem&tls_min=1.2``
        (also ``weight=3``, ``timeout=30``) or ``smtps://...``."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"SMTP_URL has no host: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        use_ssl = parts.scheme == "smtps"
        tls_min = query.get("tls_min", "").strip()
        if tls_min.lower().startswith("tlsv"):
            tls_min = tls_min[4:]
        if tls_min and tls_min not in _TLS_VERSIONS:
            raise ValueError(f"SMTP_URL tls_min must be one of 1.0, 1.1, 1.2, 1.3, got {tls_min!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if use_ssl else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_ssl=use_ssl,
            starttls=query.get("starttls", "0").lower() in _TRUE,
            timeout=float(query.get("timeout", "30")),
            weight=int(query.get("weight", "1")),
            ca_file=query.get("ca_file", ""),
            tls_min=tls_min,
        )

    @property
    def uses_tls(self) -> bool:
        return self.use_ssl or self.starttls


def parse_smtp_urls(value: str, *, helo_name: str = "") -> list[SMTPConfig]:
    """``SMTP_URL`` may list several relays separated by commas or whitespace."""
    return [
        dataclasses.replace(SMTPConfig.from_url(u), helo_name=helo_name)
        for u in value.replace(",", " ").split()
        if u
    ]


def tls_context(config: SMTPConfig) -> ssl.SSLContext:
    """The TLS policy for a relay: verify its certificate and name, against ``ca_file`` alone
    when given (a private CA), with at least ``tls_min``."""
    if config.ca_file and not os.access(config.ca_file, os.R_OK):
        raise FileNotFoundError(f"CA file {config.ca_file} cannot be read")
    context = ssl.create_default_context(cafile=config.ca_file or None)
    if config.tls_min:
        context.minimum_version = _TLS_VERSIONS[config.tls_min]
    return context


def is_tls_refusal(exc: BaseException) -> bool:
    """A TLS failure that repeats until someone changes a setting: the certificate is not
    trusted, no common TLS version, or the CA file is missing."""
    if isinstance(exc, (FileNotFoundError, ssl.SSLCertVerificationError, ssl.CertificateError)):
        return True
    reason = str(getattr(exc, "reason", "") or "").upper()
    return isinstance(exc, ssl.SSLError) and ("VERSION" in reason or "PROTOCOL" in reason)


def describe_tls_failure(exc: BaseException, config: SMTPConfig) -> str:
    """A TLS failure in words a person can act on, naming the CA file that was used."""
    trust = f"CA file: {config.ca_file}" if config.ca_file else "system CAs; set ca_file"
    if isinstance(exc, FileNotFoundError):
        return f"relay certificate cannot be checked: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        return f"relay certificate not trusted: {why} ({trust})"
    if isinstance(exc, ssl.CertificateError):
        return f"relay certificate not trusted: {exc} ({trust})"
    reason = getattr(exc, "reason", None) or str(exc)
    if "VERSION" in str(reason).upper() or "PROTOCOL" in str(reason).upper():
        wanted = f"TLS {config.tls_min} or newer" if config.tls_min else "a TLS version we accept"
        return f"relay does not offer {wanted}: {reason}"
    return f"TLS handshake with the relay failed: {reason}"


class SMTPConnectionLost(OSError):
    """The connection broke, timed out or spoke nonsense while waiting at ``stage``."""

    def __init__(self, stage: Stage, reason: str) -> None:
        super().__init__(f"SMTP connection lost at {stage.value}: {reason}")
        self.stage = stage
        self.reason = reason


class SMTPRefused(OSError):
    """The server refused the session itself: the greeting (stage CONNECT) or EHLO, STARTTLS
    or AUTH (stage HELO); ``reply.stage`` says which."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"SMTP session refused at {reply.stage.value}: {reply}")
        self.reply = reply


class SMTPSession:
    """One SMTP session. Not thread-safe."""

    def __init__(self, config: SMTPConfig, *, local_hostname: str | None = None) -> None:
        self.config = config
        self.local_hostname = (
            local_hostname or config.helo_name or default_helo_name("") or socket.gethostname()
        )
        self._sock: socket.socket | None = None
        self._buffer = b""
        self.extensions: dict[str, str] = {}
        self.is_pipelining = False
        self.greeting = ""

    # -- session ---------------------------------------------------------------------------

    def connect(self, timeout: float | None = None, *, authenticate: bool = True) -> None:
        """Open the connection, EHLO, STARTTLS and AUTH as configured. ``timeout`` bounds each
        step of the session setup (a blackholed relay must not stall the caller for long);
        replies afterwards wait up to the relay's own timeout.

        A certificate the relay's CA does not vouch for, or a TLS version below ``tls_min``,
        raises ``SMTPConnectionLost`` at stage TLS with the reason in words."""
        cfg = self.config
        setup_timeout = min(cfg.timeout, timeout) if timeout else cfg.timeout
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=setup_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise SMTPConnectionLost(Stage.CONNECT, str(exc)) from exc
        self._sock = sock
        self._buffer = b""
        if cfg.use_ssl:
            self._start_tls(Stage.CONNECT)
        greeting = self._read_reply(Stage.CONNECT)
        if greeting.code != 220:
            self.close()
            raise SMTPRefused(greeting)
        self.greeting = str(greeting).splitlines()[0]
        self._ehlo()
        if cfg.starttls and not cfg.use_ssl:
            if "STARTTLS" not in self.extensions:
                self.close()
                raise SMTPRefused(Reply(Stage.HELO, 554, "5.7.0 STARTTLS required but not offered"))
            self._command(b"STARTTLS", Stage.HELO, expect=220)
            self._start_tls(Stage.HELO)
            self._ehlo()
        if cfg.username and authenticate:
            self._login(cfg.username, cfg.password or "")
        self.is_pipelining = "PIPELINING" in self.extensions
        if isinstance(self._sock, ssl.SSLSocket):
            self._sock.settimeout(cfg.timeout)
        elif self._sock is not None:
            # Plain TCP: non-blocking, waiting in select() only when the kernel says a read or
            # write would block (``_wait``), still at most the relay's timeout. Python's own
            # timeout polls the socket before every call: one more system call for each read
            # and write of every message.
            self._sock.setblocking(False)

    def _start_tls(self, stage: Stage) -> None:
        """Wrap the socket in TLS, verifying the relay's certificate against ``ca_file`` (or
        the system's CAs). A failure to verify is the relay's configuration or ours, never the
        network: it is raised at stage TLS with the reason in words."""
        assert self._sock is not None
        try:
            context = tls_context(self.config)
            self._sock = context.wrap_socket(self._sock, server_hostname=self.config.host)
        except OSError as exc:  # ssl.SSLError and ssl.CertificateError are OSErrors
            self.close()
            why = describe_tls_failure(exc, self.config)
            # Only what waiting will not fix is stage TLS (it pauses the send); a handshake
            # cut short by the network is a connection lost like any other.
            raise SMTPConnectionLost(Stage.TLS if is_tls_refusal(exc) else stage, why) from exc
        self._buffer = b""

    def _ehlo(self) -> None:
        reply = self._command(b"EHLO " + self.local_hostname.encode(), Stage.HELO, expect=250)
        self.extensions = {}
        for line in reply.text.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            self.extensions[keyword.upper()] = params

    @property
    def size_limit(self) -> int | None:
        """The largest message the server takes (RFC 1870 ``SIZE n``); None when it names no
        limit (no SIZE, or ``SIZE 0``)."""
        value = self.extensions.get("SIZE")
        if value is None:
            return None
        try:
            limit = int(value.split()[0]) if value.strip() else 0
        except ValueError:
            return None
        return limit or None

    def _login(self, username: str, password: str) -> None:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or not mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            self._command(f"AUTH PLAIN {token}".encode(), Stage.HELO, expect=235)
            return
        self._command(b"AUTH LOGIN", Stage.HELO, expect=334)
        self._command(base64.b64encode(username.encode()), Stage.HELO, expect=334)
        self._command(base64.b64encode(password.encode()), Stage.HELO, expect=235)

    def _command(self, line: bytes, stage: Stage, *, expect: int) -> Reply:
        self._write(line + b"\r\n", stage)
        reply = self._read_reply(stage)
        if reply.code != expect:
            self.close()
            raise SMTPRefused(reply)
        return reply

    def command(self, line: bytes, stage: Stage) -> Reply:
        """Send one command and read its reply, whatever it is."""
        self._write(line + b"\r\n", stage)
        return self._read_reply(stage)

    def quit(self) -> None:
        """Say goodbye politely; never raises."""
        if self._sock is None:
            return
        try:
            self._write(b"QUIT\r\n", Stage.HELO)
            self._read_reply(Stage.HELO)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer = b""

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        """The socket, for ``select``; -1 when closed."""
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def has_buffered_reply(self) -> bool:
        """A whole reply line is already read from the socket, or TLS holds decrypted bytes
        (select would not say so in either case)."""
        if b"\n" in self._buffer:
            return True
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def reset(self) -> None:
        self._write(b"RSET\r\n", Stage.MAIL)
        self._read_reply(Stage.MAIL)

    # -- wire ---------------------------------------------------------------------------------

    def _write(self, data: bytes | memoryview, stage: Stage) -> None:
        sock = self._sock
        if sock is None:
            raise SMTPConnectionLost(stage, "not connected")
        try:
            if sock.gettimeout() != 0.0:  # during the session's setup, and TLS
                sock.sendall(data)
                return
            view = memoryview(data)
            deadline = 0.0
            while view:
                try:
                    view = view[sock.send(view) :]
                except BlockingIOError:  # the kernel's buffer is full: wait for room
                    deadline = deadline or time.monotonic() + self.config.timeout
                    self._wait(sock, deadline, is_write=True)
        except OSError as exc:
            self.close()
            raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc

    @staticmethod
    def _wait(sock: socket.socket, deadline: float, *, is_write: bool = False) -> None:
        """Until a non-blocking socket can be read (or written), or ``TimeoutError`` once
        ``deadline`` (monotonic) has passed."""
        left = max(0.0, deadline - time.monotonic())
        watched = [sock]
        readable, writable, _ = select.select(
            [] if is_write else watched, watched if is_write else [], [], left
        )
        if not readable and not writable:
            raise TimeoutError("timed out")

    def _recv(self, sock: socket.socket) -> bytes:
        """What the server sent; a non-blocking socket waits for it up to the relay's
        timeout, as a blocking one would."""
        deadline = 0.0
        while True:
            try:
                return sock.recv(65536)
            except BlockingIOError:
                deadline = deadline or time.monotonic() + self.config.timeout
                self._wait(sock, deadline)

    def _read_line(self, stage: Stage) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
                return line
            if self._sock is None:
                raise SMTPConnectionLost(stage, "not connected")
            try:
                chunk = self._recv(self._sock)
            except OSError as exc:
                self.close()
                raise SMTPConnectionLost(stage, str(exc) or type(exc).__name__) from exc
            if not chunk:
                self.close()
                raise SMTPConnectionLost(stage, "connection closed by server")
            self._buffer += chunk
            if len(self._buffer) > 1_000_000:
                self.close()
                raise SMTPConnectionLost(stage, "reply too long")

    def _read_reply(self, stage: Stage) -> Reply:
        # Fast path: a complete one-line reply already in the buffer (the usual case).
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end >= 4 and buffer[3:4] == b" " and buffer[:3].isdigit():
            self._buffer = buffer[end + 1 :]
            return Reply(
                stage, int(buffer[:3]), buffer[4:end].decode("utf-8", "replace").rstrip("\r")
            )
        lines: list[str] = []
        while True:
            raw = self._read_line(stage)
            if len(raw) < 4 or not raw[:3].isdigit():
                self.close()
                raise SMTPConnectionLost(stage, f"malformed reply {raw[:80]!r}")
            lines.append(raw[4:].decode("utf-8", "replace").rstrip("\r\n"))
            if raw[3:4] != b"-":
                return Reply(stage, int(raw[:3]), "\n".join(lines))
