"""Staff read release, journalist and organisation reports with charts, and export every table."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.delivery.models import Delivery
from distributor.reports import definitions
from distributor.reports.csv_export import safe_cell, to_csv
from distributor.reports.sample import seed_sent_release


def _csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_release_report_shows_figures_charts_and_tables(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = seed_sent_release(session, recipients=30, prefix="page")
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    page = client.get(f"/staff/reports/releases/{release.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert release.title in html
    assert html.count('<svg class="chart') >= 5  # outcome, engagement, opens, clicks, links
    for heading in ("Clicks per link", "By beat", "By outlet", "Opened by a person", "Bot clicks"):
        assert heading in html
    assert "Apple Mail Privacy Protection" in html  # the machine reasons are explained
    assert "Portmere Gazette" in html and "Climate" in html


def test_every_figure_on_the_report_pages_says_what_it_counts(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = seed_sent_release(session, recipients=8, prefix="defs")
    session.commit()
    logged_in(Role.PRESS_OFFICER)
    pages = {
        "release": (f"/staff/reports/releases/{release.id}", definitions.RELEASE_FIGURES),
        "dashboard": ("/staff/reports/", definitions.DASHBOARD_FIGURES),
    }
    journalist_id = session.scalar(
        select(Delivery.journalist_id).where(Delivery.release_id == release.id).limit(1)
    )
    pages["history"] = (f"/staff/reports/journalists/{journalist_id}", definitions.HISTORY_FIGURES)
    for name, (url, figures) in pages.items():
        html = client.get(url).get_data(as_text=True)
        assert html.count("What the figures mean") == 1, name  # one legend, in the page
        title = re.search(r"<title>(.*?)</title>", html, re.DOTALL)
        assert title is not None and "<" not in title.group(1), name  # no markup in the title
        for figure in figures.values():
            definition = escape(figure.definition)
            assert f'title="{definition}"' in html, (name, figure.key)  # beside the figure
            assert f"<dd>{definition}</dd>" in html, (name, figure.key)  # and in the legend
    # The staff home's "last releases' results" is a report too: each column says what it
    # counts, from the same definitions.
    home = client.get("/staff/").get_data(as_text=True)
    for key in ("recipients", "sent", "failed", "human_openers", "human_clickers"):
        definition = escape(definitions.RELEASE_FIGURES[key].definition)
        assert f'title="{definition}"' in home, key
    summary = _csv(client.get(f"/staff/reports/releases/{release.id}/summary.csv").data)
    assert summary[0] == ["Figure", "Value", "Definition"]
    labels = {row[0]: row[2] for row in summary[1:]}
    for figure in definitions.RELEASE_FIGURES.values():
        assert labels[figure.label] == figure.definition


def test_every_release_table_downloads_as_csv(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = seed_sent_release(session, recipients=12, prefix="csv")
    session.commit()
    logged_in(Role.EDITOR)
    for table, first_header in (
        ("summary", "Figure"),
        ("beats", "Beat"),
        ("outlets", "Outlet"),
        ("links", "Link"),
        ("timeline", "Starts at (UTC)"),
    ):
        response = client.get(f"/staff/reports/releases/{release.id}/{table}.csv")
        assert response.status_code == 200, table
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = _csv(response.data)
        assert rows[0][0] == first_header
        assert len(rows) > 1
    summary = dict(
        (r[0], r[1])
        for r in _csv(client.get(f"/staff/reports/releases/{release.id}/summary.csv").data)[1:]
    )
    assert summary["Recipients"] == "12"
    assert client.get(f"/staff/reports/releases/{release.id}/nope.csv").status_code == 404


def test_dashboard_and_releases_list(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = seed_sent_release(session, recipients=10, prefix="dash")
    session.commit()
    logged_in(Role.ADMIN)
    page = client.get("/staff/reports/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Sending health" in html and release.title in html
    assert 'class="threshold"' in html  # the provider thresholds are drawn
    assert "0.3%" in html and "10%" in html
    days = _csv(client.get("/staff/reports/dashboard.csv").data)
    assert days[0][:2] == ["Day", "Messages sent"] and len(days) == 31
    listing = _csv(client.get("/staff/reports/releases.csv").data)
    assert any(row[1] == release.title for row in listing[1:])


def test_journalist_engagement_history(
    client: FlaskClient, session: Session, logged_in: Callable[[Role], User]
) -> None:
    release = seed_sent_release(session, recipients=6, prefix="jh")
    session.commit()
    delivery = session.scalars(select(Delivery).where(Delivery.release_id == release.id)).first()
    assert delivery is not None and delivery.journalist_id is not None
    logged_in(Role.PRESS_OFFICER)
    page = client.get(f"/staff/reports/journalists/{delivery.journalist_id}")
    assert page.status_code == 200
    assert release.title in page.get_data(as_text=True)
    rows = _csv(client.get(f"/staff/reports/journalists/{delivery.journalist_id}.csv").data)
    assert rows[1][0] == release.title
    assert client.get("/staff/reports/journalists/999999").status_code == 404


def test_reports_need_a_login(client: FlaskClient) -> None:
    response = client.get("/staff/reports/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_csv_cells_cannot_start_a_formula() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for dangerous in ("+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert str(safe_cell(dangerous)).startswith("'")
    assert safe_cell(-3) == -3  # numbers stay numbers
    rows = list(csv.reader(io.StringIO(to_csv(["Title"], [["=cmd|' /C calc'!A0"]]))))
    assert rows[1][0].startswith("'=")


def test_the_sent_notification_lists_figures_the_reports_define() -> None:
    from distributor.notifications.compose import FIGURES

    # A key the definitions do not have is a figure that is never filled (it was "unknown").
    assert {key for key, _ in FIGURES} <= set(definitions.RELEASE_FIGURES)
