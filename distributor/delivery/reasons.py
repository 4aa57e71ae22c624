"""Why a send is waiting: the relay's state and the replies on rows not sent yet, grouped for
the send page ("relay refusing connections since 10:02, 3 connections now", "example.org
deferring 4.7.0"). Every line quotes the reply that decided it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.delivery.models import Delivery, DeliveryStatus, Send
from distributor.delivery.relaystate import RelayStatus, relay_key, relay_state_for
from distributor.mail.outcomes import enhanced_status
from distributor.mail.transport import parse_smtp_urls
from distributor.settings import Settings

_MOST = 8  # groups shown


@dataclass(frozen=True)
class Reason:
    kind: str  # "relay", "waiting" (rows back in the queue) or "domain"
    text: str
    count: int  # rows concerned (0 for the relay's own line)


def _clock(value: dt.datetime | float, zone: ZoneInfo) -> str:
    if isinstance(value, float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%H:%M")


def _recipients(n: int) -> str:
    return f"{n} recipient{'' if n == 1 else 's'}"


def current_reasons(
    session: Session, release_id: int, relays: Sequence[RelayStatus], zone: ZoneInfo
) -> list[Reason]:
    """The relay's trouble first, then rows waiting for the relay, then domains deferring."""
    reasons = [Reason("relay", r.describe(_clock(r.since, zone)), 0) for r in relays]
    send_id = session.scalar(select(Send.id).where(Send.release_id == release_id))
    if send_id is None:
        return reasons
    groups = session.execute(
        select(
            Delivery.status,
            Delivery.recipient_domain,
            Delivery.smtp_code,
            func.count(Delivery.id),
            func.min(Delivery.updated_at),
            func.max(Delivery.smtp_response),
        )
        .where(
            Delivery.send_id == send_id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED]),
            Delivery.smtp_response != "",
        )
        .group_by(Delivery.status, Delivery.recipient_domain, Delivery.smtp_code)
    ).all()
    waiting: dict[int | None, _Waiting] = {}
    domains: list[Reason] = []
    for status, domain, code, count, since, sample in groups:
        reply = _reply_of(str(sample))
        if DeliveryStatus(status) is DeliveryStatus.QUEUED:
            # Rows the relay sent back: one line per reply code, whatever the domain.
            entry = waiting.setdefault(code, _Waiting(0, since, reply))
            entry.count += int(count)
            if since is not None and (entry.since is None or since < entry.since):
                entry.since = since
            continue
        status_code = enhanced_status(str(sample)) or (str(code) if code else "")
        text = (
            f"{domain} deferring {status_code} since {_clock(since, zone)}, "
            f"{_recipients(int(count))}: {reply}"
        )
        domains.append(Reason("domain", text, int(count)))
    for group in sorted(waiting.values(), key=lambda g: -g.count):
        when = f" since {_clock(group.since, zone)}" if group.since is not None else ""
        text = f"{_recipients(group.count)} back in the queue{when}: {group.reply}"
        reasons.append(Reason("waiting", text, group.count))
    domains.sort(key=lambda r: -r.count)
    reasons.extend(domains)
    return reasons[:_MOST]


def relay_statuses(settings: Settings) -> list[RelayStatus]:
    """The configured relays' shared state (nothing when it cannot be read)."""
    try:
        keys = [relay_key(r) for r in parse_smtp_urls(settings.smtp_url)]
        return relay_state_for(settings).status(keys)
    except Exception:  # the page shows the rows' reasons anyway
        return []


@dataclass
class _Waiting:
    count: int
    since: dt.datetime | None
    reply: str


def _reply_of(response: str) -> str:
    """The server's reply without our notes after it (``[relay ...]``, ``(...)``)."""
    return response.split(" [relay ", 1)[0].split(" (never handed", 1)[0][:300]
