"""``make run``: web, worker, scheduler and the dev SMTP inbox together; Ctrl-C stops all.

Each child runs in its own session so that only this supervisor receives the terminal's
SIGINT; it then asks every child to stop (SIGTERM), waits, and kills what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from distributor.mail.relay_check import loud_warning, wait_for_relays
from distributor.settings import PROJECT_ROOT, Settings


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


def plan(settings: Settings, python: str = sys.executable) -> list[Child]:
    """The processes ``make run`` starts for these settings."""
    children = []
    if settings.uses_dev_inbox:
        children.append(Child("smtp", [python, "-m", "flask", "--app", "web", "devinbox", "serve"]))
    children += [
        Child(
            "web",
            [
                python, "-m", "gunicorn", "web:app",
                "--bind", f"127.0.0.1:{settings.web_port}",
                "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
                "--access-logfile", "-",
                "--logger-class", "distributor.gunicorn_logging.RedactingLogger",
            ],
        ),
        Child(
            "worker",
            [python, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--without-gossip", "--without-mingle"],
        ),
        Child(
            "bounces",
            [python, "-m", "flask", "--app", "web", "bounces", "serve",
             "--host", settings.bounce_smtp_host, "--port", str(settings.bounce_smtp_port)],
        ),
        Child(
            "beat",
            [python, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
             "--schedule", str(Path(settings.data_dir) / "celerybeat-schedule")],
        ),
    ]  # fmt: skip
    return children


def banner(settings: Settings) -> str:
    """What ``make run`` prints once everything is starting."""
    base = settings.public_base_url
    if settings.uses_dev_inbox:
        mail = (
            f"mail goes to the dev inbox on {settings.dev_smtp_host}:{settings.dev_smtp_port};"
            f" read it at {base}/dev/inbox/"
        )
    else:
        relay = settings.smtp_url.split("@")[-1]  # never print a password
        mail = f"mail goes to {relay}"
    return (
        f"\n  distributor is starting: staff login at {base}/login"
        f"\n  newsroom at {base}/"
        f"\n  {mail}"
        "\n  (Ctrl-C stops everything)\n"
    )


def _check_mail_relay(settings: Settings, lock: threading.Lock) -> None:
    # The dev inbox starts alongside us, so give it a few seconds before shouting.
    warning = loud_warning(wait_for_relays(settings.smtp_url, within=15.0))
    message = warning or "  mail relay answered: outgoing mail can be delivered\n"
    with lock:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def _pump(name: str, stream: IO[bytes], lock: threading.Lock) -> None:
    width = 7
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        with lock:
            sys.stdout.write(f"{name:<{width}}| {line}\n")
            sys.stdout.flush()


def run(settings: Settings) -> int:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    children = plan(settings)
    lock = threading.Lock()
    stopping = threading.Event()

    def _request_stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)

    env = dict(os.environ, PYTHONUNBUFFERED="1")  # noqa: TID251 - handed to the children whole; no setting is read here
    for child in children:
        child.process = subprocess.Popen(
            child.argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert child.process.stdout is not None
        threading.Thread(
            target=_pump, args=(child.name, child.process.stdout, lock), daemon=True
        ).start()

    print(banner(settings), flush=True)
    threading.Thread(target=_check_mail_relay, args=(settings, lock), daemon=True).start()
    exit_code = 0
    while not stopping.is_set():
        for child in children:
            assert child.process is not None
            if child.process.poll() is not None:
                print(f"{child.name} exited with {child.process.returncode}; stopping", flush=True)
                exit_code = 1
                stopping.set()
                break
        stopping.wait(0.5)

    print("\nstopping...", flush=True)
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
    print("all stopped", flush=True)
    return exit_code


def main() -> None:
    sys.exit(run(Settings.from_env()))


if __name__ == "__main__":
    main()
