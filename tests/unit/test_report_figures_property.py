"""Every report figure agrees with an oracle computed in plain Python from the same history.

Hypothesis draws random histories (deliveries in every status with their SMTP replies, bounce
reports of every kind, complaints, unsubscribes, human and machine opens, human and bot
clicks) and the release report, the 30-day dashboard, the journalist history and the API are
checked against figures counted here, row by row, without SQL. The oracle reads the figures'
plain-English definitions in ``distributor.reports.definitions`` and nothing else of it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.audience.models import Beat, Journalist, Outlet, Subscription, SubscriptionStatus
from distributor.bounces.models import (
    Bounce,
    BounceKind,
    Classification,
    Complaint,
    InboundMessage,
)
from distributor.db import Database
from distributor.delivery.models import Delivery, DeliveryStatus, Send, SendStatus
from distributor.releases.models import Release, ReleaseStatus
from distributor.releases.services import ensure_default_kinds
from distributor.reports import health, services
from distributor.reports.history import journalist_history
from distributor.reports.rollup import count_settled_sends
from distributor.tracking.models import EventKind, TrackingEvent

BASE = dt.datetime(2031, 3, 1, 9, 0, tzinfo=dt.UTC)  # far from other tests' data
NOW = BASE + dt.timedelta(days=40)
BEATS = ("Climate", "Housing", "Health")
LISTS = ("National desks", "Trade press")
OUTLETS = ("Portmere Gazette", "Coast FM", None)

# SMTP refusals a failed delivery may hold, with the kind RFC 3463 gives each (read by hand):
# 5.1.x/5.2.1 and "unknown user" name a missing mailbox; 5.3.4 is the message's size; 5.7.x
# and 5.1.8 (the sender's domain) are about us; 5.4.4 and a bare 5xx are soft; a transient
# reply still refused when the lifetime ran out is soft, or relay trouble for 4.3.0; no reply
# at all (our own error) is no bounce.
REPLIES: list[tuple[int | None, str, str]] = [
    (550, "5.1.1 <a@example.org>: Recipient address rejected: User unknown", "hard"),
    (550, "5.2.1 The email account that you tried to reach is disabled", "hard"),
    (553, "5.3.0 <a@example.org>... Unknown user", "hard"),
    (552, "5.3.4 Message size exceeds fixed maximum message size", "message"),
    (550, "5.7.1 Message rejected due to local policy", "policy"),
    (
        554,
        "5.7.26 Unauthenticated email is not accepted due to the domain's DMARC policy",
        "policy",
    ),
    (550, "5.1.8 Sender domain not found", "policy"),
    (554, "5.4.4 Host or domain name not found", "soft"),
    (452, "4.2.2 Mailbox full", "soft"),
    (550, "", "soft"),
    (451, "4.3.0 Temporary lookup failure", "relay"),
    (None, "could not render the message", ""),
]
KNOWN_KINDS = {kind.value for kind in BounceKind}
RANK = {"": 0, "relay": 1, "message": 2, "policy": 3, "soft": 4, "hard": 5}
STATUSES = ["queued", "sending", "sent", "deferred", "failed", "in_doubt", "cancelled"]
STATUSES += ["digest"]


@dataclass
class DeliverySpec:
    journalist: int
    status: str
    minutes: int  # after the send started
    reply: int  # index into REPLIES (used when failed)
    is_policy_rejection: bool
    beats: tuple[str, ...]
    lists: tuple[str, ...]
    bounces: list[tuple[str, int]]  # (kind, minutes after it went out)
    complaints: list[tuple[str, int]]  # (feedback type, minutes after)
    events: list[tuple[str, bool, int]]  # (open|click, is_machine, minutes after)


@dataclass
class History:
    # (outlet index, unsubscribed at: minutes after BASE, per subscription)
    journalists: list[tuple[int, list[int | None]]]
    releases: list[tuple[int, dict[int, DeliverySpec]]]  # (start day, journalist -> delivery)
    is_counted: bool = False  # settled sends counted per day before the dashboard is read
    ids: dict[str, Any] = field(default_factory=dict)


def _delivery(journalist: int) -> st.SearchStrategy[DeliverySpec]:
    return st.builds(
        DeliverySpec,
        journalist=st.just(journalist),
        status=st.sampled_from([*STATUSES, *["sent"] * 10]),  # most messages go out
        minutes=st.integers(0, 20 * 60),
        reply=st.integers(0, len(REPLIES) - 1),
        is_policy_rejection=st.booleans(),
        beats=st.lists(st.sampled_from(BEATS), max_size=2, unique=True).map(tuple),
        lists=st.lists(st.sampled_from(LISTS), max_size=2, unique=True).map(tuple),
        bounces=st.lists(
            st.tuples(
                st.sampled_from(["hard", "soft", "policy", "message", "relay"]),
                st.integers(1, 3000),
            ),
            max_size=2,
        ),
        complaints=st.lists(
            st.tuples(st.sampled_from(["abuse", "not-spam"]), st.integers(1, 3000)), max_size=2
        ),
        events=st.lists(
            st.tuples(st.sampled_from(["open", "click"]), st.booleans(), st.integers(0, 3000)),
            max_size=4,
        ),
    )


@st.composite
def histories(draw: st.DrawFn) -> History:
    # Few journalists and several sends, so one journalist often gets several releases and
    # an unsubscribe falls between two of them.
    n_journalists = draw(st.integers(1, 2))
    start_days = draw(st.lists(st.integers(0, 39), min_size=2, max_size=3))
    journalists = []
    for _ in range(n_journalists):
        # Unsubscribed near a send (before, between or after its messages), or never.
        near = st.tuples(st.sampled_from(start_days), st.integers(-12 * 60, 60 * 60)).map(
            lambda pair: pair[0] * 24 * 60 + pair[1]
        )
        journalists.append(
            (
                draw(st.integers(0, len(OUTLETS) - 1)),
                draw(st.lists(st.none() | near, max_size=2)),
            )
        )
    releases = []
    for start_day in start_days:
        chosen = draw(st.lists(st.integers(0, n_journalists - 1), unique=True, min_size=1))
        releases.append((start_day, {j: draw(_delivery(j)) for j in chosen}))
    return History(journalists, releases, is_counted=draw(st.booleans()))


# -- writing the history --------------------------------------------------------------------------


def _went_out_at(start: dt.datetime, spec: DeliverySpec) -> dt.datetime:
    return start + dt.timedelta(minutes=spec.minutes)


def _write(session: Session, history: History) -> None:
    tag = secrets.token_hex(4)
    kind = ensure_default_kinds(session)[0]
    beats = {}
    for name in BEATS:
        beat = Beat(name=name, slug=f"{name.lower()}-{tag}")
        session.add(beat)
        beats[name] = beat
    outlets = [Outlet(name=f"{name} {tag}") if name else None for name in OUTLETS]
    session.add_all([o for o in outlets if o is not None])
    session.flush()
    journalist_ids = []
    for n, (outlet, unsubscribed) in enumerate(history.journalists):
        email = f"j{n}.{tag}@example.org"
        outlet_row = outlets[outlet]
        journalist = Journalist(
            email=email,
            email_normalized=email,
            name=f"Reporter {n}",
            outlet_id=outlet_row.id if outlet_row is not None else None,
        )
        session.add(journalist)
        session.flush()
        journalist_ids.append(journalist.id)
        for beat_name, minutes in zip(BEATS, unsubscribed, strict=False):
            session.add(
                Subscription(
                    journalist_id=journalist.id,
                    beat_id=beats[beat_name].id,
                    status=SubscriptionStatus.CONFIRMED
                    if minutes is None
                    else SubscriptionStatus.UNSUBSCRIBED,
                    unsubscribed_at=None
                    if minutes is None
                    else BASE + dt.timedelta(minutes=minutes),
                )
            )
    history.ids["journalists"] = journalist_ids
    history.ids["releases"] = []
    raw_statuses: dict[int, str] = {}
    raw_kinds: dict[int, str] = {}
    for r, (start_day, deliveries) in enumerate(history.releases):
        start = BASE + dt.timedelta(days=start_day)
        release = Release(
            kind_id=kind.id,
            title=f"Release {r} {tag}",
            slug=f"prop-{r}-{tag}",
            status=ReleaseStatus.SENT,
            preview_token=secrets.token_urlsafe(16),
        )
        session.add(release)
        session.flush()
        history.ids["releases"].append(release.id)
        send = Send(
            release_id=release.id,
            status=SendStatus.FINISHED,
            started_at=start,
            finished_at=start + dt.timedelta(days=1),
            created_at=start,
        )
        session.add(send)
        session.flush()
        for j, spec in deliveries.items():
            at = _went_out_at(start, spec)
            code, reply, _ = REPLIES[spec.reply]
            status = spec.status
            delivery = Delivery(
                send_id=send.id,
                release_id=release.id,
                journalist_id=journalist_ids[j],
                email=f"j{j}.{tag}@example.org",
                status=DeliveryStatus(status),
                matched_beats=", ".join(spec.beats),
                matched_lists=", ".join(spec.lists),
                sent_at=at if spec.status == "sent" else None,
                first_attempt_at=at if spec.status in ("failed", "sent", "deferred") else None,
                smtp_code=code if spec.status == "failed" else None,
                smtp_response=reply if spec.status == "failed" else "",
                is_policy_rejection=spec.is_policy_rejection,
                verp_token=secrets.token_hex(16),
                created_at=start,
                updated_at=NOW,
            )
            session.add(delivery)
            session.flush()
            if spec.status == "in_doubt":  # the status's new name, not yet in every enum
                raw_statuses[delivery.id] = "in_doubt"
            for b, (bounce_kind, minutes) in enumerate(spec.bounces):
                inbound = InboundMessage(
                    source="smtp",
                    dedupe_key=f"b-{delivery.verp_token}-{b}",
                    classification=Classification.BOUNCE,
                    processed_at=at,
                )
                session.add(inbound)
                session.flush()
                row = Bounce(
                    inbound_message_id=inbound.id,
                    delivery_id=delivery.id,
                    email=delivery.email,
                    kind=BounceKind(bounce_kind) if bounce_kind in KNOWN_KINDS else BounceKind.SOFT,
                    received_at=at + dt.timedelta(minutes=minutes),
                )
                session.add(row)
                session.flush()
                if bounce_kind not in KNOWN_KINDS:  # kinds the outcome authority added
                    raw_kinds[row.id] = bounce_kind
            for c, (feedback_type, minutes) in enumerate(spec.complaints):
                inbound = InboundMessage(
                    source="smtp",
                    dedupe_key=f"c-{delivery.verp_token}-{c}",
                    classification=Classification.COMPLAINT,
                    processed_at=at,
                )
                session.add(inbound)
                session.flush()
                session.add(
                    Complaint(
                        inbound_message_id=inbound.id,
                        delivery_id=delivery.id,
                        email=delivery.email,
                        feedback_type=feedback_type,
                        received_at=at + dt.timedelta(minutes=minutes),
                    )
                )
            for event_kind, is_machine, minutes in spec.events:
                session.add(
                    TrackingEvent(
                        event_uid=secrets.token_hex(16),
                        delivery_id=delivery.id,
                        release_id=release.id,
                        journalist_id=journalist_ids[j],
                        kind=EventKind(event_kind),
                        occurred_at=at + dt.timedelta(minutes=minutes),
                        is_machine=is_machine,
                        machine_reason="scanner_ua" if is_machine else "",
                        classified_at=at,
                    )
                )
    session.flush()
    for delivery_id, value in raw_statuses.items():
        session.execute(
            text("UPDATE deliveries SET status = :v WHERE id = :id"),
            {"v": value, "id": delivery_id},
        )
    for bounce_id, value in raw_kinds.items():
        session.execute(
            text("UPDATE bounces SET kind = :v WHERE id = :id"), {"v": value, "id": bounce_id}
        )
    session.commit()


# -- the oracle ---------------------------------------------------------------------------------


def _kind(spec: DeliverySpec) -> str:
    """The most telling failure kind of one delivery."""
    kinds = [kind for kind, _ in spec.bounces]
    if spec.status == "failed":
        kinds.append(REPLIES[spec.reply][2])
    if spec.is_policy_rejection:
        kinds.append("policy")
    return max(kinds, key=RANK.__getitem__, default="")


def _unsubscribed(history: History, r: int, spec: DeliverySpec) -> bool:
    if spec.status != "sent":
        return False
    start_day, _ = history.releases[r]
    at = _went_out_at(BASE + dt.timedelta(days=start_day), spec)
    others = [
        _went_out_at(BASE + dt.timedelta(days=day), other)
        for day, deliveries in history.releases
        for j, other in deliveries.items()
        if j == spec.journalist and other.status == "sent"
    ]
    for minutes in history.journalists[spec.journalist][1]:
        if minutes is None:
            continue
        unsubscribed_at = BASE + dt.timedelta(minutes=minutes)
        if unsubscribed_at >= at and not any(at < o <= unsubscribed_at for o in others):
            return True
    return False


def _figures(history: History, r: int, spec: DeliverySpec) -> dict[str, int]:
    kind = _kind(spec)
    human = any(not machine for _, machine, _ in spec.events)
    human_click = any(k == "click" and not m for k, m, _ in spec.events)
    status = {"queued": "in_progress", "sending": "in_progress"}.get(spec.status, spec.status)
    figures = {
        "recipients": 1,
        "sent": 0,
        "delivered": int(spec.status == "sent" and not spec.bounces),
        "in_progress": 0,
        "digest": 0,
        "deferred": 0,
        "failed": 0,
        "in_doubt": 0,
        "cancelled": 0,
        "bounced_hard": int(kind == "hard"),
        "bounced_soft": int(kind == "soft"),
        "policy_rejections": int(kind == "policy"),
        "human_openers": int(human),
        "machine_only_openers": int(
            not human and any(k == "open" and m for k, m, _ in spec.events)
        ),
        "human_clickers": int(human_click),
        "bot_only_clickers": int(
            not human_click and any(k == "click" and m for k, m, _ in spec.events)
        ),
        "complaints": int(any(t != "not-spam" for t, _ in spec.complaints)),
        "unsubscribes": int(_unsubscribed(history, r, spec)),
    }
    figures[status] += 1
    return figures


def _add(into: dict[str, int], figures: dict[str, int]) -> None:
    for key, value in figures.items():
        into[key] = into.get(key, 0) + value


def _events(spec: DeliverySpec) -> dict[str, int]:
    counts = dict.fromkeys(("human_opens", "machine_opens", "human_clicks", "bot_clicks"), 0)
    for kind, machine, _ in spec.events:
        key = {
            ("open", False): "human_opens",
            ("open", True): "machine_opens",
            ("click", False): "human_clicks",
            ("click", True): "bot_clicks",
        }[(kind, machine)]
        counts[key] += 1
    return counts


def _expected_release(history: History, r: int) -> dict[str, Any]:
    totals: dict[str, int] = {}
    by_beat: dict[str, dict[str, int]] = defaultdict(dict)
    by_list: dict[str, dict[str, int]] = defaultdict(dict)
    by_outlet: dict[str, dict[str, int]] = defaultdict(dict)
    events: dict[str, int] = {}
    for spec in history.releases[r][1].values():
        figures = _figures(history, r, spec)
        _add(totals, figures)
        for beat in spec.beats or ("(no beat)",):
            _add(by_beat[beat], figures)
        for name in spec.lists:
            _add(by_list[name], figures)
        outlet = OUTLETS[history.journalists[spec.journalist][0]]
        _add(by_outlet[outlet or "(no outlet)"], figures)
        _add(events, _events(spec))
    return {
        "totals": totals,
        "by_beat": dict(by_beat),
        "by_list": dict(by_list),
        "by_outlet": dict(by_outlet),
        "events": events,
    }


def _expected_dashboard(history: History) -> dict[str, tuple[int, int, int]]:
    first_day = (NOW - dt.timedelta(days=29)).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for start_day, deliveries in history.releases:
        for spec in deliveries.values():
            if spec.status not in ("sent", "failed"):
                continue
            at = _went_out_at(BASE + dt.timedelta(days=start_day), spec)
            if at < since:
                continue
            row = days[at.date().isoformat()]
            row[0] += 1
            row[1] += int(_kind(spec) == "hard")
            row[2] += int(any(t != "not-spam" for t, _ in spec.complaints))
    return {day: (a, b, c) for day, (a, b, c) in days.items()}


# -- the property ---------------------------------------------------------------------------------


def _strip_outlet_tag(name: str) -> str:
    return name if name == "(no outlet)" else name.rsplit(" ", 1)[0]


def _nonzero(figures: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in figures.items() if v}


def _check_release(history: History, r: int, report: Any, api: dict[str, Any]) -> None:
    expected = _expected_release(history, r)
    assert report.totals == {k: expected["totals"].get(k, 0) for k in services.METRICS}
    assert report.events == {k: expected["events"].get(k, 0) for k in report.events}
    assert {k: _nonzero(v) for k, v in report.by_beat} == {
        k: _nonzero(v) for k, v in expected["by_beat"].items()
    }
    assert {k: _nonzero(v) for k, v in report.by_list} == {
        k: _nonzero(v) for k, v in expected["by_list"].items()
    }
    assert {_strip_outlet_tag(k): _nonzero(v) for k, v in report.by_outlet} == {
        k: _nonzero(v) for k, v in expected["by_outlet"].items()
    }
    assert api["totals"] == report.totals
    assert api["events"] == report.events
    assert {row["media_list"]: row["unsubscribes"] for row in api["by_list"]} == {
        k: v.get("unsubscribes", 0) for k, v in expected["by_list"].items()
    }


def _check_history(history: History, j: int, rows: Any, api: dict[str, Any]) -> None:
    expected = {}
    for r, (_, deliveries) in enumerate(history.releases):
        spec = deliveries.get(j)
        if spec is None:
            continue
        figures = _figures(history, r, spec)
        expected[history.ids["releases"][r]] = {
            "status": spec.status,
            **_events(spec),
            "bounce": _kind(spec),
            "complained": bool(figures["complaints"]),
            "delivered": bool(figures["delivered"]),
            "opened": bool(figures["human_openers"]),
            "clicked": bool(figures["human_clickers"]),
        }
    got = {
        row.release_id: {
            "status": row.status,
            "human_opens": row.human_opens,
            "machine_opens": row.machine_opens,
            "human_clicks": row.human_clicks,
            "bot_clicks": row.bot_clicks,
            "bounce": row.bounced,
            "complained": row.complained,
            "delivered": row.is_delivered,
            "opened": row.is_opened,
            "clicked": row.is_clicked,
        }
        for row in rows.rows
    }
    assert got == expected
    assert rows.delivered == sum(bool(e["delivered"]) for e in expected.values())
    assert rows.opened == sum(bool(e["opened"]) for e in expected.values())
    assert {d["release_id"]: (d["bounce"] or "") for d in api["deliveries"]} == {
        k: v["bounce"] for k, v in expected.items()
    }


@pytest.fixture()
def api_headers(session: Session, make_user: Callable[..., User]) -> dict[str, str]:
    _, secret = create_token(session, make_user(Role.EDITOR), "oracle")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _sent(journalist: int, **more: Any) -> DeliverySpec:
    fields: dict[str, Any] = {
        "journalist": journalist,
        "status": "sent",
        "minutes": 60,
        "reply": 0,
        "is_policy_rejection": False,
        "beats": ("Climate",),
        "lists": (),
        "bounces": [],
        "complaints": [],
        "events": [],
        **more,
    }
    return DeliverySpec(**fields)


# Cases too rare to leave to chance: an unsubscribe after two releases counts for the later one
# only; a 552 5.3.4 refusal and a hard report on one delivery count as one hard bounce.
EXAMPLES = [
    History(
        journalists=[(0, [5 * 24 * 60 + 600]), (1, [None])],
        releases=[(1, {0: _sent(0), 1: _sent(1)}), (5, {0: _sent(0)})],
    ),
    History(
        journalists=[(0, [])],
        releases=[
            (
                30,
                {0: _sent(0, status="failed", reply=3, bounces=[("hard", 5), ("soft", 9)])},
            )
        ],
        is_counted=True,
    ),
]


@example(history=EXAMPLES[0])
@example(history=EXAMPLES[1])
@settings(
    max_examples=20,
    deadline=None,
    # Histories are small already; shrinking through the database would take minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_every_report_figure_matches_an_oracle(
    history: History,
    connection: Connection,
    client: FlaskClient,
    api_headers: dict[str, str],
) -> None:
    headers = api_headers
    example = connection.begin_nested()  # each example's history is rolled back after it
    try:
        session = Database(connection, savepoints=True).session()
        _write(session, history)

        for r, release_id in enumerate(history.ids["releases"]):
            report = services.release_report(session, release_id)
            api = client.get(f"/api/reports/releases/{release_id}", headers=headers).json
            assert isinstance(api, dict)
            _check_release(history, r, report, api)

        if history.is_counted:
            count_settled_sends(session, now=NOW, limit=1000)
        board = health.dashboard(session, now=NOW)
        expected = _expected_dashboard(history)
        got = {
            row.day.isoformat(): (row.sent, row.bounced, row.complaints)
            for row in board.days
            if row.sent or row.bounced or row.complaints
        }
        assert got == expected
        api_board = client.get("/api/reports/dashboard", headers=headers).json
        today = health.dashboard(session)  # the API's window ends today, not at NOW
        assert (api_board["sent"], api_board["bounced"], api_board["complaints"]) == (
            today.sent,
            today.bounced,
            today.complaints,
        )

        for j, journalist_id in enumerate(history.ids["journalists"]):
            rows = journalist_history(session, journalist_id)
            api = client.get(f"/api/reports/journalists/{journalist_id}", headers=headers).json
            assert isinstance(api, dict)
            _check_history(history, j, rows, api)
        session.close()
    finally:
        example.rollback()
