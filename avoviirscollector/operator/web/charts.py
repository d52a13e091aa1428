"""Charts as inline SVG, drawn in Python: no JavaScript, no CDN, nothing to download.

The page needs two kinds of chart (points per file, lines per product over time).
A charting library from npm would be tens of kB of JavaScript to vendor and keep up
to date, and would need the data as JSON and a script to run on the wall screen;
SVG written here is a few hundred lines, renders in any browser, prints, and is
what the headless-browser test counts (one dot per file). No I/O.
Times are epoch seconds and every axis is labelled in UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 1000, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 44
#: Okabe-Ito colours: told apart by colour-blind readers, on a dark background too.
SATELLITE_COLOURS = {"npp": "#56B4E9", "j01": "#E69F00", "j02": "#CC79A7"}
PRODUCT_COLOURS = {"tir": "#009E73", "vis": "#F0E442", "btd": "#D55E00", "mir": "#56B4E9"}
FALLBACK_COLOURS = ("#BBBBBB", "#999999", "#777777")
_TIME_STEPS = (600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400)


def colour(name: str, palette: Mapping[str, str], index: int = 0) -> str:
    """The series' colour, a grey for unknown names."""
    return palette.get(name, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])


def time_ticks(start: float, end: float, count: int = 8) -> list[tuple[float, str]]:
    """Round UTC times between start and end, each with its label (date at midnight)."""
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks = []
    moment = first
    while moment <= end:
        when = dt.datetime.fromtimestamp(moment, dt.UTC)
        label = when.strftime("%m-%d") if when.hour == when.minute == 0 else when.strftime("%H:%M")
        ticks.append((moment, label))
        moment += step
    return ticks


def value_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round values up to at least ``top``."""
    top = max(top, 1e-9)
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


class _Frame:
    """Scales from data to the SVG's coordinates."""

    def __init__(self, x_range: tuple[float, float], y_top: float):
        self.x0, self.x1 = x_range
        self.y_top = y_top

    def x(self, value: float) -> float:
        span = max(self.x1 - self.x0, 1e-9)
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        clipped = min(max(value, 0.0), self.y_top)
        return HEIGHT - BOTTOM - clipped / self.y_top * (HEIGHT - TOP - BOTTOM)


def _axes(frame: _Frame, y_ticks: Sequence[float], x_label: str, y_label: str) -> list[str]:
    parts = []
    for value in y_ticks:
        y = frame.y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    for moment, label in time_ticks(frame.x0, frame.x1):
        x = frame.x(moment)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
        )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text class="label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text class="label" x="14" y="{(TOP + HEIGHT - BOTTOM) / 2:.0f}" '
        f'text-anchor="middle" transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2:.0f})">'
        f"{escape(y_label)}</text>"
    )
    return parts


def _legend(names: Sequence[tuple[str, str, str]]) -> list[str]:
    """(key, text, colour) right-aligned along the top."""
    parts, x = [], WIDTH - RIGHT
    for _key, text, fill in reversed(names):
        width = 14 + 8 * len(text)
        x -= width
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{fill}"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="17">{escape(text)}</text>')
    return parts


def _svg(chart_id: str, title: str, body: list[str]) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


#: Above this many points a series' dots that land on the same pixel are drawn once: the
#: picture is the same, and Chromium strokes a week's 21,000 dots in half the time.
DEDUPLICATE_ABOVE = 5000


def _dots(frame: _Frame, points: Sequence[tuple[float, float]], y_scale: float) -> str:
    """``M x y h0`` per point in whole pixels (a dot is 6 px): the page's hottest loop, so
    the scales are inlined (a week is 21,000 points)."""
    x0, x_factor = frame.x0, (WIDTH - LEFT - RIGHT) / max(frame.x1 - frame.x0, 1e-9)
    top, base = frame.y_top * y_scale, HEIGHT - BOTTOM
    y_factor = (HEIGHT - TOP - BOTTOM) / top
    dots = [
        f"M{LEFT + (x - x0) * x_factor:.0f} {base - min(max(y, 0.0), top) * y_factor:.0f}h0"
        for x, y in points
    ]
    if len(dots) > DEDUPLICATE_ABOVE:
        dots = list(dict.fromkeys(dots))
    return "".join(dots)


def scatter(
    chart_id: str,
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_range: tuple[float, float],
    *,
    x_label: str,
    y_label: str,
    names: Mapping[str, str],
    palette: Mapping[str, str] = SATELLITE_COLOURS,
    y_scale: float = 1.0,
) -> str:
    """A dot per point (an ``M x y h0`` of ``path.pts``), a path per series; y / ``y_scale``.

    ``data-count`` is the number of points (dense series draw a shared pixel once)."""
    top = max((max(y for _, y in points) for points in series.values() if points), default=1.0)
    ticks = value_ticks(top / y_scale)
    frame = _Frame(x_range, ticks[-1] or 1.0)
    body = _axes(frame, ticks, x_label, y_label)
    legend = []
    for index, (key, points) in enumerate(sorted(series.items())):
        fill = colour(key, palette, index)
        legend.append((key, f"{names.get(key, key)} ({len(points)})", fill))
        # One path of zero-length square-capped segments: a dot per point, one element per
        # series (21,000 <circle>s take a browser over a second to lay out); square caps
        # without anti-aliasing cost Chromium ~20 % less to paint than round ones.
        dots = _dots(frame, points, y_scale)
        body.append(
            f'<path class="pts" data-series="{escape(key)}" data-count="{len(points)}" '
            f'stroke="{fill}" stroke-width="6" stroke-linecap="square" '
            f'shape-rendering="crispEdges" fill="none" d="{dots}"/>'
        )
    if not series:
        body.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no file in this window</text>"
        )
    return _svg(chart_id, title, body + _legend(legend))


def steps(
    chart_id: str,
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_range: tuple[float, float],
    *,
    x_label: str,
    y_label: str,
    palette: Mapping[str, str] = PRODUCT_COLOURS,
) -> str:
    """A step line (``polyline.series``) per series: the value holds until the next sample."""
    values = [y for points in series.values() for _, y in points]
    ticks = value_ticks(max(values, default=1.0) or 1.0)
    frame = _Frame(x_range, ticks[-1] or 1.0)
    body = _axes(frame, ticks, x_label, y_label)
    legend = []
    for index, (key, points) in enumerate(sorted(series.items())):
        stroke = colour(key, palette, index)
        legend.append((key, key, stroke))
        coordinates, previous = [], None
        for x, y in points:
            if previous is not None:
                coordinates.append(f"{frame.x(x):.1f},{frame.y(previous):.1f}")
            coordinates.append(f"{frame.x(x):.1f},{frame.y(y):.1f}")
            previous = y
        if points:
            coordinates.append(f"{frame.x(x_range[1]):.1f},{frame.y(previous):.1f}")
        body.append(
            f'<polyline class="series" data-series="{escape(key)}" fill="none" '
            f'stroke="{stroke}" stroke-width="2" points="{" ".join(coordinates)}"/>'
        )
    if not series:
        body.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no queue sample in this window</text>"
        )
    return _svg(chart_id, title, body + _legend(legend))


def bar(chart_id: str, title: str, used: float, total: float, mark: float | None) -> str:
    """A horizontal bar: used of total, and a mark (what the retention needs)."""
    width = WIDTH - LEFT - RIGHT
    fraction = 0.0 if total <= 0 else min(used / total, 1.0)
    body = [
        f'<rect class="track" x="{LEFT}" y="10" width="{width}" height="24"/>',
        f'<rect class="used" x="{LEFT}" y="10" width="{width * fraction:.1f}" height="24"/>',
    ]
    if mark is not None and total > 0:
        x = LEFT + width * min(mark / total, 1.0)
        body.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="40"/>')
    return (
        f'<svg id="{chart_id}" class="bar" viewBox="0 0 {WIDTH} 44" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )
