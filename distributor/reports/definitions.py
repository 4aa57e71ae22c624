"""What every report figure counts: the one place that defines it.

The release report, the 30-day dashboard, a journalist's history, their CSV downloads and the
API all build their figures from the expressions here, and show the one-line definition next to
each one. No other module decides what counts as sent, delivered, a bounce, an open or a click.

Failures are sorted into hard, soft and policy by the single SMTP-outcome authority
(``distributor.mail.outcomes``): a bounce report carries the kind it decided when it was read,
and a refusal during the SMTP session is read by it here. A delivery gets one failure kind, the
most telling one it has (hard, then soft, then policy, then message, then relay), so the hard,
soft and policy figures never count one delivery twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Session, aliased

from distributor.audience.models import Subscription
from distributor.bounces.models import Bounce, Complaint
from distributor.bounces.policy import NOT_COMPLAINTS
from distributor.delivery.models import Delivery, Send
from distributor.mail.outcomes import (
    BounceKind,
    Outcome,
    Reply,
    Stage,
    classify_reply,
    classify_report,
)
from distributor.tracking.models import EventKind, TrackingEvent


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    definition: str


def _figures(*items: tuple[str, str, str]) -> dict[str, Figure]:
    return {key: Figure(key, label, definition) for key, label, definition in items}


# Per-recipient figures of a release (each one counts deliveries, i.e. recipients).
RELEASE_FIGURES = _figures(
    ("recipients", "Recipients", "Everyone the send was frozen for: one per journalist."),
    (
        "sent",
        "Sent",
        "Accepted by the receiving mail server (a 2xx reply), digests included once they went.",
    ),
    (
        "delivered",
        "Delivered",
        "Sent, and no bounce report came back for it afterwards.",
    ),
    ("in_progress", "Queued or sending", "Waiting for its turn, or on its way to the server now."),
    (
        "digest",
        "In the daily digest",
        "Chose the daily digest: goes out in their next digest mail, not on its own.",
    ),
    ("deferred", "Deferred", "Refused for now (4xx): tried again later, until the lifetime ends."),
    (
        "failed",
        "Failed",
        "Given up for good: refused permanently (5xx) or still refused at the end of the lifetime.",
    ),
    (
        "in_doubt",
        "In doubt",
        "The connection broke after the message went out and before the server answered "
        "(RFC 1047): it may have arrived; never resent by itself.",
    ),
    ("cancelled", "Cancelled", "Taken out of the send before it went."),
    (
        "bounced_hard",
        "Bounced (hard)",
        "The address does not exist or is disabled (5.1.x, 5.2.1, or words to that effect), "
        "from the server's reply or a bounce report: the address is suppressed.",
    ),
    (
        "bounced_soft",
        "Bounced (soft)",
        "Could not be delivered for a reason that may pass (full mailbox, expired retries), "
        "and not a hard bounce.",
    ),
    (
        "policy_rejections",
        "Refused by policy",
        "Refused because of us, not the address (5.7.x: authentication, reputation, "
        "content): the address is not suppressed.",
    ),
    (
        "human_openers",
        "Opened by a person",
        "A person opened it: a pixel fetch or a click not made by a machine (a click implies "
        "an open).",
    ),
    (
        "machine_only_openers",
        "Opened by machines only",
        "Only machines fetched the pixel (Apple Mail Privacy Protection, image proxies, "
        "scanners): not a reader.",
    ),
    ("human_clickers", "Clicked (people)", "A person clicked at least one link."),
    (
        "bot_only_clickers",
        "Clicked by bots only",
        "Only link scanners clicked (HEAD requests, scanner agents, every link within seconds).",
    ),
    (
        "complaints",
        "Complaints",
        "The recipient reported it as spam (an RFC 5965 report or an ESP's complaint event).",
    ),
    (
        "unsubscribes",
        "Unsubscribes",
        "Unsubscribed after this release reached them and before any later release did.",
    ),
)

# Event counts of a release (each one counts events, not recipients).
EVENT_FIGURES = _figures(
    ("human_opens", "Human opens (every fetch)", "Every pixel fetch made by a person."),
    (
        "machine_opens",
        "Machine opens (every fetch)",
        "Every pixel fetch made by a machine (privacy proxies, image caches, scanners).",
    ),
    ("human_clicks", "Human clicks", "Every link click made by a person."),
    ("bot_clicks", "Bot clicks", "Every link click made by a scanner or bot."),
)

# The organisation's 30-day sending health, per day.
DASHBOARD_FIGURES = _figures(
    (
        "sent",
        "Messages sent",
        "Messages the receiving server accepted or refused for good, on the day that happened.",
    ),
    (
        "bounced",
        "Hard bounces",
        "Of those, hard bounces (the address is gone), on the day the message was sent.",
    ),
    (
        "bounce_rate",
        "Bounce rate",
        "Hard bounces divided by messages sent (providers act at 5% and 10%).",
    ),
    (
        "complaints",
        "Complaints",
        "Recipients who reported a message as spam, on the day the message was sent.",
    ),
    (
        "complaint_rate",
        "Complaint rate",
        "Complaints divided by messages sent (Gmail and Yahoo: stay under 0.1%, never 0.3%).",
    ),
)

# One journalist's history, per release.
HISTORY_FIGURES = _figures(
    ("releases", "Releases sent to them", "Releases whose send included this journalist."),
    ("delivered", "Delivered", RELEASE_FIGURES["delivered"].definition),
    ("opened", "Opened by them", "Releases they opened themselves (machines not counted)."),
    ("clicked", "Clicked by them", "Releases in which they clicked a link themselves."),
    ("human_opens", "Human opens", EVENT_FIGURES["human_opens"].definition),
    ("first_human_open_at", "First read", "When they first opened it or clicked in it (UTC)."),
    ("machine_opens", "Machine opens", EVENT_FIGURES["machine_opens"].definition),
    ("human_clicks", "Human clicks", EVENT_FIGURES["human_clicks"].definition),
    ("bot_clicks", "Bot clicks", EVENT_FIGURES["bot_clicks"].definition),
    (
        "bounce",
        "Bounce",
        "How it failed, if it did: hard, soft, policy, message (its size or content) or relay.",
    ),
    ("complained", "Complained", RELEASE_FIGURES["complaints"].definition),
)

ALL_FIGURES: dict[str, Figure] = {
    **{f"release.{k}": f for k, f in RELEASE_FIGURES.items()},
    **{f"event.{k}": f for k, f in EVENT_FIGURES.items()},
    **{f"dashboard.{k}": f for k, f in DASHBOARD_FIGURES.items()},
    **{f"history.{k}": f for k, f in HISTORY_FIGURES.items()},
}

# -- delivery statuses --------------------------------------------------------------------------

# The final dot went out and no reply came (migration 0009 renamed the old "unknown").
IN_DOUBT_STATUSES = frozenset({"in_doubt"})
SENT_STATUSES = frozenset({"sent"})
IN_PROGRESS_STATUSES = frozenset({"queued", "sending"})
DIGEST_STATUSES = frozenset({"digest"})
DEFERRED_STATUSES = frozenset({"deferred"})
FAILED_STATUSES = frozenset({"failed"})
CANCELLED_STATUSES = frozenset({"cancelled"})

STATUS_FIGURES: dict[str, frozenset[str]] = {
    "sent": SENT_STATUSES,
    "in_progress": IN_PROGRESS_STATUSES,
    "digest": DIGEST_STATUSES,
    "deferred": DEFERRED_STATUSES,
    "failed": FAILED_STATUSES,
    "in_doubt": IN_DOUBT_STATUSES,
    "cancelled": CANCELLED_STATUSES,
}


def status_value(column: Any) -> ColumnElement[str]:
    """A status column as its stored text, so values the enum does not know yet compare too."""
    return type_coerce(column, String())


def status_value_of(value: Any) -> str:
    """A status read back from the database, as its stored text."""
    return str(getattr(value, "value", value))


def status_in(column: Any, statuses: Iterable[str]) -> ColumnElement[bool]:
    return status_value(column).in_(sorted(statuses))


# -- failure kinds ------------------------------------------------------------------------------

# Most telling first: a delivery with a hard and a soft report is a hard bounce.
KIND_RANK = {
    BounceKind.HARD.value: 5,
    BounceKind.SOFT.value: 4,
    BounceKind.POLICY.value: 3,
    BounceKind.MESSAGE.value: 2,
    BounceKind.RELAY.value: 1,
}
RANK_KIND = {rank: kind for kind, rank in KIND_RANK.items()}


def session_failure_kind(code: int | None, response: str) -> BounceKind | None:
    """The failure kind of a refusal during the SMTP session, as the outcome authority reads it.

    The delivery row keeps the reply, not the stage it came at; a permanent refusal is
    recorded only at RCPT or after the final dot (RFC 5321 4.1.1.3), so RCPT is read first and
    the final dot second. A row given up after its lifetime holds a transient reply: read as a
    report whose action is "failed" (RFC 3464), which makes it soft unless it names us or our
    relay. A failure with no reply at all was never a server's answer and is no bounce.
    """
    text = response or ""
    if not code:
        return None  # no server answered (connection trouble, our own error): not a bounce
    for stage in (Stage.RCPT, Stage.DOT):
        verdict = classify_reply(Reply(stage, code, text))
        if verdict.outcome is Outcome.FAILED and verdict.kind is not None:
            return verdict.kind
    verdict = classify_report(text, f"{code or ''} {text}".strip(), action="failed")
    return verdict.kind


def session_failures(session: Session, where: ColumnElement[bool]) -> dict[int, str]:
    """Failed deliveries matching ``where`` with the kind of their session refusal."""
    rows = session.execute(
        select(Delivery.id, Delivery.smtp_code, Delivery.smtp_response).where(
            where, status_in(Delivery.status, FAILED_STATUSES)
        )
    ).all()
    kinds: dict[int, str] = {}
    for delivery_id, code, response in rows:
        kind = session_failure_kind(code, response or "")
        if kind is not None:
            kinds[int(delivery_id)] = kind.value
    return kinds


def _session_rank(kinds: dict[int, str]) -> ColumnElement[int]:
    by_rank: dict[int, list[int]] = {}
    for delivery_id, kind in kinds.items():
        by_rank.setdefault(KIND_RANK[kind], []).append(delivery_id)
    whens = [(Delivery.id.in_(sorted(ids)), rank) for rank, ids in sorted(by_rank.items())[::-1]]
    if not whens:
        return literal(0)
    return case(*whens, else_=0)


def _report_rank() -> ColumnElement[int]:
    return case(
        *[(status_value(Bounce.kind) == kind, rank) for kind, rank in KIND_RANK.items()],
        else_=0,
    )


# -- the per-delivery facts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which deliveries a report covers, and the same restriction on tracking events."""

    deliveries: ColumnElement[bool]
    events: ColumnElement[bool]

    @classmethod
    def releases(cls, release_ids: Sequence[int]) -> Scope:
        ids = list(release_ids)
        return cls(Delivery.release_id.in_(ids), TrackingEvent.release_id.in_(ids))

    @classmethod
    def journalist(cls, journalist_id: int) -> Scope:
        # Through the sends: each probe uses the (release_id, journalist_id) unique index, so a
        # journalist's history needs no index of its own on the send path's busiest table.
        return cls(
            and_(
                Delivery.journalist_id == journalist_id,
                Delivery.release_id.in_(select(Send.release_id)),
            ),
            TrackingEvent.journalist_id == journalist_id,
        )


def unsubscribed_after(delivery: Any = Delivery) -> ColumnElement[bool]:
    """The journalist ended a subscription after this delivery and before any later one."""
    later = aliased(Delivery, name="later")
    later_send = aliased(Send, name="later_send")
    sooner_mail = (
        select(literal(1))
        .select_from(later_send)
        .join(later, later.release_id == later_send.release_id)
        .where(
            later.journalist_id == delivery.journalist_id,
            later.sent_at > delivery.sent_at,
            later.sent_at <= Subscription.unsubscribed_at,
            later_send.started_at <= Subscription.unsubscribed_at,
        )
        .correlate_except(later, later_send)
    )
    return and_(
        delivery.sent_at.is_not(None),
        Subscription.unsubscribed_at.is_not(None),
        Subscription.unsubscribed_at >= delivery.sent_at,
        ~exists(sooner_mail),
    )


def _unsubscribed(scope: Scope) -> Any:
    """Deliveries in ``scope`` an unsubscribe counts for.

    A join, not a test per delivery: only the few journalists with an ended subscription are
    looked at, so a release report does not probe the subscriptions once per recipient.
    """
    return (
        select(Delivery.id.label("delivery_id"))
        .join(Subscription, Subscription.journalist_id == Delivery.journalist_id)
        .where(scope.deliveries, unsubscribed_after(Delivery))
        .group_by(Delivery.id)
        .subquery("unsub")
    )


def without_jit(session: Session) -> None:
    """Turn PostgreSQL's JIT compiler off for the rest of this transaction.

    Report statements are estimated as costly (a sum over a release's deliveries with a
    correlated unsubscribe test), which passes ``jit_above_cost``, but they run in tens of
    milliseconds: compiling them took ~300 ms of a 20 ms query (PostgreSQL 15, EXPLAIN ANALYZE
    "JIT: Timing"). The PostgreSQL manual advises JIT only for long-running analytical queries.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def greatest(session: Session, *values: ColumnElement[int]) -> ColumnElement[int]:
    if session.get_bind().dialect.name == "postgresql":
        return func.greatest(*values)
    return func.max(*values)  # SQLite's max() of several arguments is scalar


def day_of(session: Session, column: Any) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp as ``YYYY-MM-DD``."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.max(case((condition, 1), else_=0))


def is_human_event() -> ColumnElement[bool]:
    return TrackingEvent.is_machine.is_(False)


def is_open(human: bool) -> ColumnElement[bool]:
    return and_(TrackingEvent.kind == EventKind.OPEN, TrackingEvent.is_machine.is_(not human))


def is_click(human: bool) -> ColumnElement[bool]:
    return and_(TrackingEvent.kind == EventKind.CLICK, TrackingEvent.is_machine.is_(not human))


def is_complaint() -> ColumnElement[bool]:
    return Complaint.feedback_type.not_in(sorted(NOT_COMPLAINTS))


def delivery_facts(
    session: Session,
    scope: Scope,
    *extra: ColumnElement[Any],
    joins: Sequence[tuple[Any, ColumnElement[bool]]] = (),
) -> Any:
    """One row per delivery in ``scope`` with a 0/1 column for every per-recipient figure.

    Every per-recipient figure is ``sum(<column>)`` over these rows (see ``figure_sums``).
    """
    ev = (
        select(
            TrackingEvent.delivery_id.label("delivery_id"),
            _flag(is_human_event()).label("human_event"),
            _flag(is_open(human=False)).label("machine_open"),
            _flag(is_click(human=True)).label("human_click"),
            _flag(is_click(human=False)).label("bot_click"),
        )
        .where(scope.events)
        .group_by(TrackingEvent.delivery_id)
        .subquery("ev")
    )
    bo = (
        select(
            Bounce.delivery_id.label("delivery_id"),
            func.max(_report_rank()).label("rank"),
        )
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .where(scope.deliveries)
        .group_by(Bounce.delivery_id)
        .subquery("bo")
    )
    co = (
        select(Complaint.delivery_id.label("delivery_id"))
        .join(Delivery, Delivery.id == Complaint.delivery_id)
        .where(scope.deliveries, is_complaint())
        .group_by(Complaint.delivery_id)
        .subquery("co")
    )
    unsub = _unsubscribed(scope)
    session_rank = _session_rank(session_failures(session, scope.deliveries))
    policy_flag = case((Delivery.is_policy_rejection.is_(True), KIND_RANK["policy"]), else_=0)
    rank = greatest(session, func.coalesce(bo.c.rank, 0), session_rank, policy_flag)
    human_event = func.coalesce(ev.c.human_event, 0)
    human_click = func.coalesce(ev.c.human_click, 0)

    def status_flag(statuses: frozenset[str]) -> ColumnElement[int]:
        return case((status_in(Delivery.status, statuses), 1), else_=0)

    query = (
        select(
            Delivery.id.label("delivery_id"),
            Delivery.release_id.label("release_id"),
            *extra,
            literal(1).label("recipients"),
            *[status_flag(statuses).label(key) for key, statuses in STATUS_FIGURES.items()],
            case(
                (
                    and_(
                        status_in(Delivery.status, SENT_STATUSES),
                        func.coalesce(bo.c.rank, 0) == 0,
                    ),
                    1,
                ),
                else_=0,
            ).label("delivered"),
            case((rank == KIND_RANK["hard"], 1), else_=0).label("bounced_hard"),
            case((rank == KIND_RANK["soft"], 1), else_=0).label("bounced_soft"),
            case((rank == KIND_RANK["policy"], 1), else_=0).label("policy_rejections"),
            rank.label("failure_rank"),
            human_event.label("human_openers"),
            case(
                (and_(func.coalesce(ev.c.machine_open, 0) == 1, human_event == 0), 1), else_=0
            ).label("machine_only_openers"),
            human_click.label("human_clickers"),
            case((and_(func.coalesce(ev.c.bot_click, 0) == 1, human_click == 0), 1), else_=0).label(
                "bot_only_clickers"
            ),
            case((co.c.delivery_id.is_not(None), 1), else_=0).label("complaints"),
            case((unsub.c.delivery_id.is_not(None), 1), else_=0).label("unsubscribes"),
        )
        .select_from(Delivery)
        .outerjoin(ev, ev.c.delivery_id == Delivery.id)
        .outerjoin(bo, bo.c.delivery_id == Delivery.id)
        .outerjoin(co, co.c.delivery_id == Delivery.id)
        .outerjoin(unsub, unsub.c.delivery_id == Delivery.id)
    )
    for target, on in joins:
        query = query.outerjoin(target, on)
    return query.where(scope.deliveries).subquery("facts")


def figure_sums(facts: Any) -> list[ColumnElement[Any]]:
    """``sum()`` of every per-recipient figure over ``delivery_facts`` rows, labelled by key."""
    return [func.coalesce(func.sum(facts.c[key]), 0).label(key) for key in RELEASE_FIGURES]


def figure_row(row: Any) -> dict[str, int]:
    return {key: int(getattr(row, key) or 0) for key in RELEASE_FIGURES}


def failure_kind_name(rank: int | None) -> str:
    """``"hard"``, ``"soft"``, ... for a ``failure_rank``; empty when nothing failed."""
    return RANK_KIND.get(int(rank or 0), "")


# -- event counts -------------------------------------------------------------------------------


def event_counts(session: Session, where: ColumnElement[bool]) -> dict[str, int]:
    """Opens and clicks as events (every fetch), people and machines apart."""
    counts = dict.fromkeys(EVENT_FIGURES, 0)
    for kind, is_machine, n in session.execute(
        select(TrackingEvent.kind, TrackingEvent.is_machine, func.count())
        .where(where)
        .group_by(TrackingEvent.kind, TrackingEvent.is_machine)
    ):
        counts[event_key(kind, is_machine)] += int(n)
    return counts


def event_key(kind: Any, is_machine: bool) -> str:
    if str(getattr(kind, "value", kind)) == EventKind.OPEN.value:
        return "machine_opens" if is_machine else "human_opens"
    return "bot_clicks" if is_machine else "human_clicks"


# -- the dashboard ------------------------------------------------------------------------------


# A send's messages go out within the delivery lifetime, and digest rows by the next day's
# digest: a send that finished this long before the window cannot add to it.
SEND_REACH = dt.timedelta(days=3)


def sends_reaching(since: dt.datetime) -> Select[Any]:
    """Sends whose messages can fall on or after ``since``: the dashboard reads only these."""
    return select(Send.id).where(
        or_(Send.finished_at.is_(None), Send.finished_at >= since - SEND_REACH)
    )


def went_out_at() -> ColumnElement[dt.datetime]:
    """When a message went out: accepted (``sent_at``), or for a refusal its first attempt.

    Not ``updated_at``: erasing a journalist later touches the row and would move the day.
    """
    return func.coalesce(Delivery.sent_at, Delivery.first_attempt_at, Delivery.created_at)


def went_out() -> ColumnElement[bool]:
    return or_(
        and_(status_in(Delivery.status, SENT_STATUSES), Delivery.sent_at.is_not(None)),
        status_in(Delivery.status, FAILED_STATUSES),
    )


def hard_bounce_reports() -> ColumnElement[bool]:
    return status_value(Bounce.kind) == BounceKind.HARD.value


def not_hard_by_report() -> ColumnElement[bool]:
    return not_(
        exists(select(literal(1)).where(Bounce.delivery_id == Delivery.id, hard_bounce_reports()))
    )
