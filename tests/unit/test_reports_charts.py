"""The server-drawn charts are well-formed, labelled SVG that escape what they show."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from distributor.reports.charts import Series, Threshold, bar_chart, line_chart, meter

SVG = "{http://www.w3.org/2000/svg}"


def test_line_chart_draws_series_and_thresholds_with_accessible_names() -> None:
    svg = line_chart(
        title="Daily <bounce> rate",
        desc="30 days",
        labels=[f"{d:02d} Nov" for d in range(1, 31)],
        series=[Series("Bounce rate", [0.01 * (d % 7) for d in range(30)], "#000")],
        thresholds=[Threshold("limit", 0.10, "#f00")],
        percent=True,
    )
    root = ET.fromstring(str(svg))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Daily <bounce> rate"  # escaped in the markup
    assert "&lt;bounce&gt;" in str(svg)
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert len(root.findall(f"{SVG}line[@class='threshold']")) == 1
    assert any((t.text or "").endswith("%") for t in root.iter(f"{SVG}text"))


def test_bar_chart_scales_bars_to_their_values() -> None:
    svg = bar_chart(
        title="Clicks",
        desc="per link",
        labels=["Link 1", "Link 2"],
        series=[Series("Human", [4, 8], "#00f"), Series("Bots", [0, 2], "#999")],
    )
    bars = ET.fromstring(str(svg)).findall(f"{SVG}rect[@class='bar']")
    heights = [float(b.get("height", "0")) for b in bars]
    assert len(bars) == 4
    assert heights[2] == max(heights) and heights[1] == 0  # link 2 humans tallest; no bots on 1


def test_meter_shows_the_value_against_thresholds() -> None:
    svg = meter(
        title="Complaint rate",
        value=0.004,
        thresholds=[Threshold("warn", 0.001, "#a60"), Threshold("limit", 0.003, "#b00")],
        scale_max=0.005,
    )
    root = ET.fromstring(str(svg))
    value_bar = root.find(f"{SVG}rect[@class='meter-value']")
    assert value_bar is not None and value_bar.get("fill") == "#b00"  # past the limit: red
    assert "0.4%" in (root.find(f"{SVG}title").text or "")
