"""Server-side SVG charts: drawn here, inline in the page, no JavaScript and no CDN.

Each chart carries a <title> and <desc> (role="img") and every page shows the same figures in a
table next to it, which is the accessible alternative.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

HUMAN = "#0b5cad"
HUMAN_LIGHT = "#6fa8dc"
MACHINE = "#98a2b3"
MACHINE_DARK = "#667085"
OK = "#1f7a3e"
WARN = "#c27803"
BAD = "#b3261e"

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class Threshold:
    label: str
    value: float
    color: str


def _nice_max(value: float) -> float:
    """The top of the axis: four equal steps of 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    raw_step = value / 4
    exponent = 10 ** math.floor(math.log10(raw_step))
    for factor in (1, 2, 5, 10):
        if raw_step <= factor * exponent:
            return float(4 * factor * exponent)
    return float(40 * exponent)


def _fmt(value: float, percent: bool) -> str:
    if percent:
        text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
        return f"{text}%"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _label_step(count: int, room: int = 8) -> int:
    return max(1, math.ceil(count / room))


class _Frame:
    """Plot area geometry shared by the chart kinds."""

    def __init__(self, width: int, height: int, left: int = 56, bottom: int = 34) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, 16, 14, bottom

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, value: float, maximum: float) -> float:
        return self.top + self.plot_h * (1 - value / maximum)


def _open(title: str, desc: str, frame: _Frame, css_class: str) -> tuple[list[str], str]:
    n = next(_ids)
    tid, did = f"chart-{n}-title", f"chart-{n}-desc"
    parts = [
        f'<svg class="chart {css_class}" role="img" aria-labelledby="{tid} {did}" '
        f'viewBox="0 0 {frame.width} {frame.height}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>',
    ]
    return parts, tid


def _y_axis(parts: list[str], frame: _Frame, maximum: float, percent: bool) -> None:
    for i in range(5):
        value = maximum * i / 4
        y = frame.y(value, maximum)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e4e7ec" stroke-width="1"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6675">'
            f"{escape(_fmt(value, percent))}</text>"
        )


def _x_labels(
    parts: list[str],
    frame: _Frame,
    labels: Sequence[str],
    xs: Sequence[float],
    *,
    every: bool = False,
) -> None:
    longest = max((len(label) for label in labels), default=1)
    room = max(2, int(frame.plot_w // (longest * 6.5 + 12)))  # ~6.5 units per character
    if every:  # categories (bars): each one named; they get their own slot
        room = len(labels)
    step = _label_step(len(labels), room)
    for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
        if i % step == 0 or (i == len(labels) - 1 and len(labels) <= 12):
            parts.append(
                f'<text x="{x:.1f}" y="{frame.height - frame.bottom + 16}" text-anchor="middle" '
                f'fill="#5b6675">{escape(label)}</text>'
            )


def legend(series: Sequence[Series], thresholds: Sequence[Threshold] = ()) -> Markup:
    """An HTML legend (text scales and wraps better than SVG text)."""
    items = [
        f'<li><span class="swatch{" dashed" if s.dashed else ""}" style="background:{s.color}">'
        f"</span>{escape(s.name)}</li>"
        for s in series
    ] + [
        f'<li><span class="swatch threshold" style="border-color:{t.color}"></span>'
        f"{escape(t.label)}</li>"
        for t in thresholds
    ]
    return Markup('<ul class="chart-legend">' + "".join(items) + "</ul>")  # noqa: S704 - escaped above


def line_chart(
    *,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    thresholds: Sequence[Threshold] = (),
    percent: bool = False,
    width: int = 720,
    height: int = 240,
) -> Markup:
    """Lines over evenly spaced buckets, with optional horizontal threshold lines."""
    frame = _Frame(width, height)
    peak = max([0.0, *(v for s in series for v in s.values), *(t.value * 1.15 for t in thresholds)])
    maximum = _nice_max(peak)
    if percent and peak <= 1.0:
        maximum = min(maximum, 1.0)  # a rate never needs an axis beyond 100%
    parts, _ = _open(title, desc, frame, "line-chart")
    _y_axis(parts, frame, maximum, percent)
    count = max(1, len(labels))
    xs = [
        frame.left + (frame.plot_w * (i / (count - 1)) if count > 1 else frame.plot_w / 2)
        for i in range(count)
    ]
    for t in thresholds:
        y = frame.y(t.value, maximum)
        parts.append(
            f'<line class="threshold" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="{t.color}" stroke-width="1.5" '
            f'stroke-dasharray="6 4"><title>{escape(t.label)}</title></line>'
        )
    for s in series:
        points = " ".join(
            f"{x:.1f},{frame.y(v, maximum):.1f}" for x, v in zip(xs, s.values, strict=False)
        )
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{s.color}" '
            f'stroke-width="2.25" stroke-linejoin="round" stroke-linecap="round"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        if len(s.values) <= 45:
            for x, v, label in zip(xs, s.values, labels, strict=False):
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{frame.y(v, maximum):.1f}" r="2.6" '
                    f'fill="{s.color}"><title>{escape(s.name)}, {escape(label)}: '
                    f"{escape(_fmt(v, percent))}</title></circle>"
                )
    _x_labels(parts, frame, labels, xs)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - all text went through escape()


def bar_chart(
    *,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    stacked: bool = False,
    percent: bool = False,
    width: int = 720,
    height: int = 240,
) -> Markup:
    """Vertical bars per label, grouped side by side or stacked."""
    frame = _Frame(width, height)
    if stacked:
        peak = max([0.0, *(sum(vals) for vals in zip(*(s.values for s in series), strict=False))])
    else:
        peak = max([0.0, *(v for s in series for v in s.values)])
    maximum = _nice_max(peak)
    parts, _ = _open(title, desc, frame, "bar-chart")
    _y_axis(parts, frame, maximum, percent)
    count = max(1, len(labels))
    slot = frame.plot_w / count
    bar_room = slot * 0.72
    xs = [frame.left + slot * (i + 0.5) for i in range(count)]
    for i, (label, cx) in enumerate(zip(labels, xs, strict=True)):
        base = 0.0
        groups = 1 if stacked else max(1, len(series))
        bar_w = bar_room / groups
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0.0
            if stacked:
                x = cx - bar_room / 2
                y_top, y_bottom = frame.y(base + value, maximum), frame.y(base, maximum)
                base += value
            else:
                x = cx - bar_room / 2 + j * bar_w
                y_top, y_bottom = frame.y(value, maximum), frame.y(0, maximum)
            h = max(0.0, y_bottom - y_top)
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y_top:.1f}" width="{max(1.0, bar_w - 1):.1f}" '
                f'height="{h:.1f}" fill="{s.color}" rx="1.5"><title>{escape(s.name)}, '
                f"{escape(label)}: {escape(_fmt(value, percent))}</title></rect>"
            )
    _x_labels(parts, frame, labels, xs, every=len(labels) <= 12)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - all text went through escape()


def meter(
    *,
    title: str,
    value: float,
    thresholds: Sequence[Threshold],
    scale_max: float,
    width: int = 340,
    height: int = 46,
) -> Markup:
    """A horizontal gauge of a rate against its warning and critical thresholds."""
    n = next(_ids)
    tid = f"chart-{n}-title"
    left, right = 4, width - 4
    span = right - left

    def x(v: float) -> float:
        return left + span * min(v, scale_max) / scale_max

    colour = OK
    for t in thresholds:
        if value >= t.value:
            colour = t.color
    parts = [
        f'<svg class="chart meter" role="img" aria-labelledby="{tid}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="10">',
        f'<title id="{tid}">{escape(title)}: {escape(_fmt(value, True))}</title>',
        f'<rect x="{left}" y="8" width="{span}" height="12" rx="6" fill="#eef1f5"/>',
        f'<rect class="meter-value" x="{left}" y="8" width="{max(2.0, x(value) - left):.1f}" '
        f'height="12" rx="6" fill="{colour}"/>',
    ]
    for t in thresholds:
        parts.append(
            f'<line x1="{x(t.value):.1f}" x2="{x(t.value):.1f}" y1="4" y2="24" stroke="{t.color}" '
            f'stroke-width="2"/><text x="{x(t.value):.1f}" y="38" text-anchor="middle" '
            f'fill="{t.color}">{escape(_fmt(t.value, True))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - all text went through escape()
