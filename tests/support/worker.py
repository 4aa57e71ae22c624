"""Running a real Celery worker process for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def service_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DISTRIBUTOR_ENV="test",
        SECRET_KEY="integration-secret-key-0123456789abcdef",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(overrides)
    return env


class WorkerProcess(subprocess.Popen[bytes]):
    """A running worker and the file its output goes to."""

    log_path = ""


@contextmanager
def celery_worker(
    env: dict[str, str],
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    extra_args: list[str] | None = None,
) -> Iterator[WorkerProcess]:
    """Start ``celery -A worker worker`` and wait until it reports ready; stop it afterwards."""
    log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)  # noqa: SIM115
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *(extra_args or []),
    ]
    proc = WorkerProcess(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = Path(log.name).read_text(errors="replace")
            if " ready." in text:
                break
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{text}")
            time.sleep(0.2)
        else:
            raise AssertionError(f"worker did not start:\n{Path(log.name).read_text()}")
        proc.log_path = log.name
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
