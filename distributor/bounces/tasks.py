from __future__ import annotations

from celery import shared_task

from distributor.bounces import services
from distributor.bounces.mailbox import poll_mailbox
from distributor.db import get_db, task_session
from distributor.logs import get_logger
from distributor.settings import current_settings

log = get_logger(__name__)


@shared_task(name="bounces.poll_mailbox")
def poll_bounce_mailbox() -> int:
    """Fetch new bounces from BOUNCE_MAILBOX_URL, when one is configured."""
    settings = current_settings()
    if not settings.bounce_mailbox_url:
        return 0
    return poll_mailbox(get_db(), settings).deleted


@shared_task(name="bounces.process_pending")
def process_pending() -> int:
    """Process inbound messages stored but left unprocessed (receiver stopped in between)."""
    with task_session() as session:
        return services.process_pending(session, current_settings())


@shared_task(name="bounces.purge_raw")
def purge_raw() -> int:
    """Forget raw inbound messages older than BOUNCE_RAW_RETENTION_DAYS."""
    with task_session() as session:
        purged = services.purge_raw(session, current_settings())
    log.info("bounces.purged", count=purged)
    return purged
