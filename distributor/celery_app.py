"""Celery wiring. The app factory calls ``init_celery``; nothing is built at import time.

Tasks take JSON arguments (ids), reload state and call a service. They are enqueued only
after the transaction that created their work has committed (``distributor.tasks_api``), and
every periodic job is a sweep over due rows, so a flushed broker loses nothing.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready
from flask import Flask

from distributor.settings import Settings

# Modules whose tasks the worker registers. Each domain adds its tasks module here.
TASK_MODULES = [
    "distributor.bounces.tasks",
    "distributor.tracking.tasks",
    "distributor.admin.tasks",
    "distributor.releases.tasks",
    "distributor.delivery.tasks",
    "distributor.delivery.mail_tasks",
    "distributor.audience.tasks",
    "distributor.embargo.tasks",
    "distributor.notifications.tasks",
    "distributor.reports.tasks",
    "distributor.media.tasks",
]

# Periodic sweeps run by Celery beat: name -> (task, seconds).
BEAT_SCHEDULE: dict[str, tuple[str, float]] = {
    "audience-requeue-stalled": ("audience.requeue_stalled", 120.0),
    "bounces-poll-mailbox": ("bounces.poll_mailbox", 60.0),
    "bounces-process-pending": ("bounces.process_pending", 300.0),
    "bounces-purge-raw": ("bounces.purge_raw", 3600.0),
    "tracking-flush": ("tracking.flush", 5.0),
    "lift-embargoes": ("releases.lift_embargoes", 60.0),
    "delivery-sweep": ("delivery.sweep", 2.0),
    "delivery-digests": ("delivery.send_digests", 900.0),
    "embargo-sweep": ("embargo.sweep", 60.0),
    "reports-count-settled-sends": ("reports.count_settled_sends", 600.0),
    # Daily in the words; hourly costs nothing and pages check the time themselves.
    "media-expire-rights": ("media.expire_rights", 3600.0),
}


def init_celery(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A task lost with its worker is redelivered; the ledger makes redelivery harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        imports=TASK_MODULES,
        beat_schedule={
            name: {"task": task, "schedule": seconds}
            for name, (task, seconds) in BEAT_SCHEDULE.items()
        },
        beat_schedule_filename=f"{settings.data_dir}/celerybeat-schedule",
    )
    if settings.redis_url:
        # An unacknowledged task comes back after this long; ledger rows make that harmless.
        celery.conf.broker_transport_options = {"visibility_timeout": 3600}
    celery.set_default()
    app.extensions["celery"] = celery
    smtp_url = settings.smtp_url

    def _on_worker_ready(**_: Any) -> None:  # Celery passes sender= and more by keyword
        _warn_when_relay_unreachable(smtp_url)

    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="relay-check")
    return celery


def _warn_when_relay_unreachable(smtp_url: str) -> None:
    """Startup check: a worker that cannot reach its SMTP relay says so at once, loudly."""
    from distributor.logs import get_logger
    from distributor.mail.relay_check import loud_warning, wait_for_relays

    warning = loud_warning(wait_for_relays(smtp_url, within=10.0))
    if warning:
        get_logger("distributor.worker").error("mail_relay_unreachable", banner=warning)
