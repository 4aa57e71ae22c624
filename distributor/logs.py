"""Structured logging: JSON lines in production, readable key=value lines in development."""

from __future__ import annotations

import logging
import sys

import structlog

from distributor.settings import Settings


def configure_logging(settings: Settings) -> None:
    renderer: structlog.types.Processor
    if settings.log_json or settings.is_production:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
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
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("werkzeug", "mail.log", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def security_event(event: str, **fields: object) -> None:
    """One line per authentication or authorisation event (OWASP ASVS V7.2: log them all).

    Always at WARNING or above so that a production log level of WARNING keeps them, under the
    ``distributor.security`` logger that alerting can follow. Never pass secrets or passwords.
    """
    structlog.get_logger("distributor.security").warning(event, security=True, **fields)
