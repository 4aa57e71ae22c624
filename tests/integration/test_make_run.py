"""What `make run` does after installing: migrate, seed, start every process, stop on Ctrl-C.

Runs the real supervisor on embedded defaults (SQLite database, SQLite broker, dev SMTP inbox),
logs in as the printed demo admin, sends the admin test email, finds it in the dev inbox, then
sends SIGINT and checks that every process stopped.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.services import free_port
from tests.support.worker import ROOT

pytestmark = pytest.mark.integration
TOKEN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def _env(tmp_path: Path) -> dict[str, str]:
    unset = {"DATABASE_URL", "REDIS_URL", "SMTP_URL", "PUBLIC_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    web_port, smtp_port, bounce_port = free_port(), free_port(), free_port()
    # Only the ports change (issue 11): SMTP_URL and PUBLIC_BASE_URL must follow them.
    env.update(
        BOUNCE_SMTP_PORT=str(bounce_port),
        DATA_DIR=str(tmp_path),
        PORT=str(web_port),
        DEV_SMTP_PORT=str(smtp_port),
        PYTHONUNBUFFERED="1",
    )
    return env


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        status, page = self.get(path)
        assert status == 200, (path, status)
        match = TOKEN.search(page)
        assert match, f"no CSRF token on {path}"
        data = urllib.parse.urlencode({**fields, "csrf_token": match.group(1)}).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as response:
            return response.status, response.read().decode()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_make_run_serves_login_and_delivers_the_test_email_to_the_dev_inbox(tmp_path: Path) -> None:
    env = _env(tmp_path)
    flask = [sys.executable, "-m", "flask", "--app", "web"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    seeded = subprocess.run(
        [*flask, "demo", "seed"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    email = re.search(r"email:\s+(\S+)", seeded.stdout)
    password = re.search(r"password:\s+(\S+)", seeded.stdout)
    assert email and password, seeded.stdout

    log = tmp_path / "run.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "distributor.runner"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        browser = Browser(f"http://127.0.0.1:{env['PORT']}")

        def web_up() -> bool:
            try:
                return browser.get("/login")[0] == 200
            except OSError:
                return False

        _wait(web_up, 60, "the web server")
        assert "Staff login" in browser.get("/login")[1]
        status, _ = browser.post_form(
            "/login", {"email": email.group(1), "password": password.group(1)}
        )
        assert status == 200
        status, page = browser.post_form("/staff/test-email", {"to_address": "desk@example.org"})
        assert "Test email queued" in page
        _wait(lambda: "Test email from" in browser.get("/dev/inbox/")[1], 90, "the test email")
        assert browser.get("/healthz")[0] == 200
    finally:
        runner.send_signal(signal.SIGINT)
        try:
            code = runner.wait(timeout=40)
        except subprocess.TimeoutExpired:
            runner.kill()
            raise
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "all stopped" in output
    # The banner names the ports in use, and the relay check found the inbox it started.
    assert f"staff login at http://127.0.0.1:{env['PORT']}/login" in output
    assert f"dev inbox on 127.0.0.1:{env['DEV_SMTP_PORT']}" in output
    assert "mail relay answered" in output and "MAIL CANNOT REACH" not in output
    for name in ("smtp", "bounces", "web", "worker", "beat"):
        assert f"{name:<7}|" in output, f"{name} never started:\n{output[-3000:]}"
