"""Structured logging: JSON lines in production, readable key=value lines in development."""

from __future__ import annotations

import logging
import re
import sys

import structlog

from distributor.settings import Settings


def configure_logging(settings: Settings) -> None:
    renderer: structlog.types.Processor
    processors: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta
    ]
    if settings.log_json or settings.is_production:
        # The stack trace goes into the JSON line as text; without this it was dropped.
        processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        # Plain tracebacks: rich's (the default when rich is installed) print every local
        # variable of every frame, which means addresses and tokens in the terminal and logs.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[*processors, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("werkzeug", "mail.log", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # flufl.bounce logs each detector it runs, and a full traceback before re-raising a
    # detector's error; the bounce parser logs that failure itself, in one line.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def security_event(event: str, **fields: object) -> None:
    """One line per authentication or authorisation event (OWASP ASVS V7.2: log them all).

    Always at WARNING or above so that a production log level of WARNING keeps them, under the
    ``distributor.security`` logger that alerting can follow. Never pass secrets or passwords.
    """
    structlog.get_logger("distributor.security").warning(event, security=True, **fields)


# Paths that carry a bearer token: whoever reads a log line must not be able to use the link
# (OWASP Logging Cheat Sheet: never log session ids or access tokens).
_TOKEN_PATH = re.compile(
    r"(/(?:preferences|unsubscribe|subscribe/confirm|preview|t/o|t/c)/)[^/?\s]+"
)


def redact_path(path: str) -> str:
    """``path`` with the token segment of a link path replaced by ``[redacted]``."""
    return _TOKEN_PATH.sub(r"\1[redacted]", path)
