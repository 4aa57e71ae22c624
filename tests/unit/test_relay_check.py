"""The startup check: does mail reach its relay? And what `make run` prints about it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from distributor.mail.relay_check import CachedRelayCheck, check_relays, loud_warning
from distributor.runner import banner, plan
from distributor.settings import Settings
from tests.support.services import free_port


@pytest.fixture()
def greeting_server() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"220 relay.test ESMTP\r\n")
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    for line in conn.makefile("rb"):
                        if line.upper().startswith(b"QUIT"):
                            conn.sendall(b"221 bye\r\n")
                            break
                        conn.sendall(b"250-relay.test\r\n250 PIPELINING\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_a_listening_relay_is_reachable(greeting_server: int) -> None:
    (status,) = check_relays(f"smtp://127.0.0.1:{greeting_server}")
    assert status.is_reachable and status.detail.startswith("220")
    assert loud_warning([status]) == ""


def test_nothing_listening_gives_a_loud_warning() -> None:
    port = free_port()
    (status,) = check_relays(f"smtp://127.0.0.1:{port}", timeout=1.0)
    assert not status.is_reachable
    warning = loud_warning([status])
    assert f"MAIL CANNOT REACH ITS RELAY: 127.0.0.1:{port}" in warning
    assert "DEV_SMTP_PORT" in warning and warning.count("!" * 20) >= 2


def test_cached_check_reports_problems_for_staff_pages() -> None:
    check = CachedRelayCheck(f"smtp://127.0.0.1:{free_port()}", timeout=0.5)
    assert [p.port for p in check.problems()] == [int(check.smtp_url.rsplit(":", 1)[1])]


def test_make_run_banner_and_dev_inbox_follow_the_ports() -> None:
    settings = Settings.from_env({"PORT": "5101", "DEV_SMTP_PORT": "8125"})
    text = banner(settings)
    assert "http://127.0.0.1:5101/login" in text
    assert "dev inbox on 127.0.0.1:8125" in text and "http://127.0.0.1:5101/dev/inbox/" in text
    assert ":5000" not in text and ":8025" not in text
    names = [child.name for child in plan(settings)]
    assert "smtp" in names  # the runner starts the inbox mail now goes to


def test_banner_never_prints_the_relay_password() -> None:
    settings = Settings.from_env({"SMTP_URL": "smtp://user:secret@relay.example.org:587"})
    text = banner(settings)
    assert "relay.example.org:587" in text and "secret" not in text
    assert "smtp" not in [child.name for child in plan(settings)]
