"""Finding 8: no bearer token in app or access logs; dev tracebacks without local variables;
production JSON logs keep the stack trace."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from flask.testing import FlaskClient

from distributor.audience import tokens
from distributor.gunicorn_logging import RedactingLogger
from distributor.logs import configure_logging, get_logger, redact_path
from distributor.settings import Settings


def test_request_log_lines_carry_no_link_token(
    client: FlaskClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="distributor.web")
    token = tokens.preferences_token(settings, 424242)
    unsub = tokens.unsubscribe_token(settings, 424242)
    for path in (f"/preferences/{token}", f"/unsubscribe/{unsub}", "/preview/" + "p" * 40):
        client.get(path)
    logged = " ".join(str(r.msg) + r.getMessage() for r in caplog.records)
    assert "/preferences/[redacted]" in logged
    assert token not in logged and unsub not in logged and "p" * 40 not in logged


def test_redaction_keeps_the_shape_of_the_path() -> None:
    assert redact_path("/t/c/AbC123/7") == "/t/c/[redacted]/7"
    assert redact_path("/subscribe/confirm/x.y.z") == "/subscribe/confirm/[redacted]"
    assert redact_path("/staff/releases/3") == "/staff/releases/3"


def test_gunicorn_access_log_is_redacted() -> None:
    class Cfg:
        access_log_format = "%(r)s %(U)s"
        logconfig_dict: dict[str, object] = {}
        errorlog = "-"
        loglevel = "info"
        accesslog = None
        syslog = False
        capture_output = False
        disable_redirect_access_to_syslog = False
        logconfig = None
        logconfig_json = None
        user = 0
        group = 0

    class Resp:
        status = "200 OK"
        headers: list[tuple[str, str]] = []
        response_length = 0
        sent = 0

    class Req:
        headers: list[tuple[str, str]] = []

    logger = RedactingLogger.__new__(RedactingLogger)
    logger.cfg = Cfg()
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/unsubscribe/secret.token.here",
        "PATH_INFO": "/unsubscribe/secret.token.here",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    import datetime as dt

    atoms = logger.atoms(Resp(), Req(), environ, dt.timedelta(seconds=0.01))
    assert "secret.token.here" not in atoms["r"] and "secret.token.here" not in atoms["U"]


def _log_an_error(capsys: pytest.CaptureFixture[str]) -> str:
    personal = "priya.raman@example.org"  # noqa: F841 - a local a rich traceback would print
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("distributor.test").exception("failed")
    return capsys.readouterr().err


def test_dev_tracebacks_show_no_local_variables(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(dataclasses.replace(settings, env="development"))
    err = _log_an_error(capsys)
    assert "RuntimeError: boom" in err
    assert "priya.raman@example.org" not in err


def test_production_json_logs_keep_the_stack_trace(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(dataclasses.replace(settings, log_json=True))
    err = _log_an_error(capsys)
    line = json.loads(err.strip().splitlines()[-1])
    assert "Traceback" in line["exception"] and "RuntimeError: boom" in line["exception"]
    configure_logging(settings)
