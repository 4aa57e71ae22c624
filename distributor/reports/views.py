"""Report pages and their CSV downloads (every table on a page has one)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from werkzeug.wrappers import Response

from distributor.db import request_session
from distributor.reports import definitions, health, services
from distributor.reports.charts import (
    BAD,
    HUMAN,
    HUMAN_LIGHT,
    MACHINE,
    MACHINE_DARK,
    WARN,
    Series,
    Threshold,
    bar_chart,
    legend,
    line_chart,
    meter,
)
from distributor.reports.csv_export import csv_response
from distributor.reports.history import journalist_history
from distributor.security import staff_required

bp = Blueprint("reports", __name__, url_prefix="/staff/reports")

COMPLAINT_THRESHOLDS = [
    Threshold("Complaints: aim below 0.1%", health.COMPLAINT_WARN, WARN),
    Threshold("Complaints: never above 0.3%", health.COMPLAINT_LIMIT, BAD),
]
BOUNCE_THRESHOLDS = [
    Threshold("Bounces: warning at 5%", health.BOUNCE_WARN, WARN),
    Threshold("Bounces: limit 10%", health.BOUNCE_LIMIT, BAD),
]
PAGE_SIZE = 25
MAX_ID = 2**31 - 1


@bp.url_value_preprocessor
def _ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    for value in (values or {}).values():
        if isinstance(value, int) and value > MAX_ID:
            abort(404)


def _page() -> int:
    try:
        return min(100_000, max(1, int(request.args.get("page", "1"))))
    except ValueError:
        return 1


@bp.get("/")
@staff_required
def index() -> str:
    session = request_session()
    board = health.dashboard(session)
    page = _page()
    releases = services.recent_releases(session, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    labels = [d.day.strftime("%d %b") for d in board.days]
    volume = [
        Series("Messages sent", [d.sent for d in board.days], HUMAN),
    ]
    rate_series_bounce = [Series("Bounce rate", [d.bounce_rate for d in board.days], HUMAN)]
    rate_series_complaint = [
        Series("Complaint rate", [d.complaint_rate for d in board.days], HUMAN)
    ]
    charts = {
        "volume": bar_chart(
            title="Messages sent per day, last 30 days",
            desc=f"{board.sent} messages in 30 days; the table below lists each day.",
            labels=labels,
            series=volume,
            width=1000,
            height=260,
        ),
        "bounce": line_chart(
            title="Daily bounce rate against the 5% and 10% thresholds",
            desc=f"30-day bounce rate {board.bounce_rate:.2%}.",
            labels=labels,
            series=rate_series_bounce,
            thresholds=BOUNCE_THRESHOLDS,
            percent=True,
            width=520,
        ),
        "complaint": line_chart(
            title="Daily complaint rate against the 0.1% and 0.3% thresholds",
            desc=f"30-day complaint rate {board.complaint_rate:.2%}.",
            labels=labels,
            series=rate_series_complaint,
            thresholds=COMPLAINT_THRESHOLDS,
            percent=True,
            width=520,
        ),
        "bounce_meter": meter(
            title="30-day bounce rate",
            value=board.bounce_rate,
            thresholds=BOUNCE_THRESHOLDS,
            scale_max=0.15,
        ),
        "complaint_meter": meter(
            title="30-day complaint rate",
            value=board.complaint_rate,
            thresholds=COMPLAINT_THRESHOLDS,
            scale_max=0.005,
        ),
        "bounce_legend": legend(rate_series_bounce, BOUNCE_THRESHOLDS),
        "complaint_legend": legend(rate_series_complaint, COMPLAINT_THRESHOLDS),
    }
    return render_template(
        "staff/reports/index.html",
        board=board,
        charts=charts,
        releases=releases[:PAGE_SIZE],
        figures=definitions.DASHBOARD_FIGURES,
        release_figures=definitions.RELEASE_FIGURES,
        page=page,
        has_next=len(releases) > PAGE_SIZE,
    )


@bp.get("/dashboard.csv")
@staff_required
def dashboard_csv() -> Response:
    board = health.dashboard(request_session())
    return csv_response(
        "dashboard-30-days.csv",
        ["Day", *(figure.label for figure in definitions.DASHBOARD_FIGURES.values())],
        (
            [
                d.day,
                d.sent,
                d.bounced,
                round(d.bounce_rate, 6),
                d.complaints,
                round(d.complaint_rate, 6),
            ]
            for d in board.days
        ),
    )


@bp.get("/releases.csv")
@staff_required
def releases_csv() -> Response:
    rows = services.recent_releases(request_session(), limit=10_000)
    return csv_response(
        "releases.csv",
        ["Release id", "Title", "Started at", *services.METRIC_LABELS.values()],
        (
            [r.release_id, r.title, r.started_at, *(r.figures[m] for m in services.METRICS)]
            for r in rows
        ),
    )


def _release_charts(report: services.ReleaseReport) -> dict[str, Any]:
    t = report.totals
    labels = [b.label for b in report.timeline]
    opens = [
        Series("Human opens", [b.human_opens for b in report.timeline], HUMAN),
        Series("Machine opens", [b.machine_opens for b in report.timeline], MACHINE),
    ]
    clicks = [
        Series("Human clicks", [b.human_clicks for b in report.timeline], HUMAN),
        Series("Bot clicks", [b.bot_clicks for b in report.timeline], MACHINE_DARK),
    ]
    unit = "hour" if report.bucket == "hour" else "day"
    outcome_keys = [
        "sent",
        "digest",
        "deferred",
        "failed",
        "in_doubt",
        "bounced_hard",
        "bounced_soft",
        "policy_rejections",
    ]
    outcome_labels = [services.METRIC_LABELS[key] for key in outcome_keys]
    outcome = [Series("Recipients", [t[key] for key in outcome_keys], HUMAN)]
    engagement_labels = ["Opened", "Clicked"]
    engagement = [
        Series("People", [t["human_openers"], t["human_clickers"]], HUMAN),
        Series(
            "Machines only",
            [t["machine_only_openers"], t["bot_only_clickers"]],
            MACHINE,
        ),
    ]
    link_series = [
        Series("Human clicks", [link.human_clicks for link in report.links], HUMAN),
        Series("Bot clicks", [link.bot_clicks for link in report.links], MACHINE_DARK),
    ]
    return {
        "opens": line_chart(
            title=f"Opens per {unit}: people and machines",
            desc="Pixel fetches over time; the timeline table lists the same figures.",
            labels=labels,
            series=opens,
            width=520,
        ),
        "clicks": line_chart(
            title=f"Clicks per {unit}: people and bots",
            desc="Link clicks over time; the timeline table lists the same figures.",
            labels=labels,
            series=clicks,
            width=520,
        ),
        "opens_legend": legend(opens),
        "clicks_legend": legend(clicks),
        "outcome": bar_chart(
            title="Delivery outcome",
            desc="Recipients by delivery outcome; the summary table lists the same figures.",
            labels=outcome_labels,
            series=outcome,
            width=520,
            height=220,
        ),
        "engagement": bar_chart(
            title="Recipients who opened and clicked",
            desc="People compared with machines; the summary table lists the same figures.",
            labels=engagement_labels,
            series=engagement,
            width=520,
            height=220,
        ),
        "engagement_legend": legend(engagement),
        "links": bar_chart(
            title="Clicks per link",
            desc="Human and bot clicks for each link; the links table lists the same figures.",
            labels=[f"Link {link.position + 1}" for link in report.links],
            series=link_series,
            width=1000,
            height=220,
        )
        if report.links
        else None,
        "links_legend": legend(link_series),
    }


@bp.get("/releases/<int:release_id>")
@staff_required
def release(release_id: int) -> str:
    report = services.release_report(request_session(), release_id)
    return render_template(
        "staff/reports/release.html",
        report=report,
        charts=_release_charts(report),
        metrics=services.METRICS,
        labels=services.METRIC_LABELS,
        figures=definitions.RELEASE_FIGURES,
        event_figures=definitions.EVENT_FIGURES,
    )


@bp.get("/releases/<int:release_id>/<table>.csv")
@staff_required
def release_csv(release_id: int, table: str) -> Response:
    report = services.release_report(request_session(), release_id)
    name = f"release-{release_id}-{table}.csv"
    labels = list(services.METRIC_LABELS.values())
    if table == "summary":
        rows = [
            [services.METRIC_LABELS[m], report.totals[m], services.METRIC_DEFINITIONS[m]]
            for m in services.METRICS
        ]
        rows += [
            [figure.label, report.events[key], figure.definition]
            for key, figure in definitions.EVENT_FIGURES.items()
        ]
        return csv_response(name, ["Figure", "Value", "Definition"], rows)
    if table in ("beats", "outlets", "lists"):
        source, head = {
            "beats": (report.by_beat, "Beat"),
            "outlets": (report.by_outlet, "Outlet"),
            "lists": (report.by_list, "Media list"),
        }[table]
        return csv_response(
            name,
            [head, *labels],
            ([key, *(values[m] for m in services.METRICS)] for key, values in source),
        )
    if table == "links":
        return csv_response(
            name,
            ["Link", "URL", "Human clicks", "Human clickers", "Bot clicks"],
            (
                [
                    link.position + 1,
                    link.url,
                    link.human_clicks,
                    link.human_clickers,
                    link.bot_clicks,
                ]
                for link in report.links
            ),
        )
    if table == "timeline":
        event_labels = [figure.label for figure in definitions.EVENT_FIGURES.values()]
        return csv_response(
            name,
            ["Starts at (UTC)", *event_labels],
            (
                [b.starts_at, b.human_opens, b.machine_opens, b.human_clicks, b.bot_clicks]
                for b in report.timeline
            ),
        )
    abort(404)


@bp.get("/journalists/<int:journalist_id>")
@staff_required
def journalist(journalist_id: int) -> str:
    history = journalist_history(request_session(), journalist_id)
    rows = list(reversed(history.rows))[-20:]
    series = [
        Series("Human opens", [r.human_opens for r in rows], HUMAN),
        Series("Human clicks", [r.human_clicks for r in rows], HUMAN_LIGHT),
        Series("Machine opens", [r.machine_opens for r in rows], MACHINE),
    ]
    chart = (
        bar_chart(
            title="Engagement per release, oldest to newest",
            desc="Opens and clicks for each release sent to this journalist; the table lists "
            "the same figures.",
            labels=[r.sent_at.strftime("%d %b") if r.sent_at else "-" for r in rows],
            series=series,
            width=1000,
            height=220,
        )
        if rows
        else None
    )
    return render_template(
        "staff/reports/journalist.html",
        history=history,
        chart=chart,
        legend=legend(series),
        figures=definitions.HISTORY_FIGURES,
    )


@bp.get("/journalists/<int:journalist_id>.csv")
@staff_required
def journalist_csv(journalist_id: int) -> Response:
    history = journalist_history(request_session(), journalist_id)
    return csv_response(
        f"journalist-{journalist_id}-engagement.csv",
        [
            "Release",
            "Status",
            "Sent at",
            *(
                definitions.HISTORY_FIGURES[key].label
                for key in (
                    "human_opens",
                    "first_human_open_at",
                    "machine_opens",
                    "human_clicks",
                    "bot_clicks",
                    "bounce",
                    "complained",
                )
            ),
        ],
        (
            [
                r.title,
                r.status,
                r.sent_at,
                r.human_opens,
                r.first_human_open_at,
                r.machine_opens,
                r.human_clicks,
                r.bot_clicks,
                r.bounced,
                r.complained,
            ]
            for r in history.rows
        ),
    )
