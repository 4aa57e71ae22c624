"""Delivery tasks: thin wrappers that take ids and call the engine.

``delivery.sweep`` runs every few seconds (BEAT_SCHEDULE). It is what makes the broker
disposable: it starts scheduled sends, puts due deferred rows back in the queue, settles rows
left by dead workers (claims whose heartbeat stopped), restarts sends that went quiet with work left, and finishes sends.
"""

from __future__ import annotations

from functools import lru_cache

from celery import shared_task
from flask import current_app
from sqlalchemy import select

from distributor.db import Database, task_session, utcnow
from distributor.delivery import ledger
from distributor.delivery.models import Send, SendStatus
from distributor.delivery.ratelimit import RateLimiter, rate_limiter_for
from distributor.delivery.sender import run_batch
from distributor.delivery.services import (
    finish_if_done,
    finish_unless_due,
    restart_if_quiet,
    start_due_scheduled,
)
from distributor.logs import get_logger
from distributor.mail.transport import SMTPConfig, parse_smtp_urls
from distributor.settings import Settings, current_settings

log = get_logger("distributor.delivery.tasks")


@lru_cache(maxsize=4)
def _relays(smtp_url: str, helo_name: str) -> list[SMTPConfig]:
    return parse_smtp_urls(smtp_url, helo_name=helo_name)


@lru_cache(maxsize=4)
def _limiter(settings: Settings) -> RateLimiter:
    return rate_limiter_for(settings)


@shared_task(name="delivery.dispatch_send")
def dispatch_send(send_id: int) -> None:
    """Start the batch chains of a send (each chain enqueues its successor)."""
    settings = current_settings()
    for _ in range(max(1, settings.delivery_parallel_batches)):
        send_batch.delay(send_id)


@shared_task(name="delivery.send_batch")
def send_batch(send_id: int) -> None:
    """Deliver one batch of a send; go on with another while work is due."""
    settings = current_settings()
    db: Database = current_app.extensions["distributor.db"]
    result = run_batch(
        db,
        settings,
        send_id,
        limiter=_limiter(settings),
        relays=_relays(settings.smtp_url, settings.helo_name),
    )
    if not result.is_send_running:
        return
    if result.retry_after > 0:
        # The relay is paused or has no connection free: come back when it may have one
        # (a short countdown; the sweep restarts quiet sends anyway, the broker is disposable).
        send_batch.apply_async((send_id,), countdown=min(30.0, result.retry_after))
        return
    with task_session() as session:
        if not result.claimed:
            finish_if_done(session, send_id)
        elif finish_unless_due(session, send_id, utcnow()):
            send_batch.delay(send_id)


@shared_task(name="delivery.sweep")
def sweep() -> None:
    """Periodic: scheduled sends, due retries, dead workers' rows, quiet and finished sends."""
    settings = current_settings()
    now = utcnow()
    with task_session() as session:
        due = list(
            session.scalars(
                select(Send.id).where(
                    Send.status == SendStatus.SCHEDULED, Send.scheduled_for <= now
                )
            )
        )
    for send_id in due:
        with task_session() as session:
            start_due_scheduled(session, send_id, now)
    with task_session() as session:
        ledger.promote_due_deferred(session, now)
    with task_session() as session:
        # Its own transaction: the claims and their rows stay locked only while deciding.
        recovered = ledger.recover_stale_claims(
            session, stale_seconds=settings.delivery_claim_timeout_seconds
        )
        if recovered.claims:
            log.warning(
                "delivery.recovered_stale_claims",
                claims=recovered.claims,
                requeued=recovered.requeued,
                in_doubt=recovered.in_doubt,
            )
    with task_session() as session:
        running = list(session.scalars(select(Send.id).where(Send.status == SendStatus.RUNNING)))
    for send_id in running:
        with task_session() as session:
            restarted = restart_if_quiet(
                session, send_id, now, claim_timeout_seconds=settings.delivery_claim_timeout_seconds
            )
            if not restarted:
                finish_unless_due(session, send_id, now)
