"""Small inline SVG charts for the admin pages: no JavaScript and nothing fetched, so they render offline.

Every label goes through format_html, so a campaign or stage name cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

COLOURS = ["#417690", "#e08a2c", "#6a9a3c", "#a3476b", "#7a6fb0"]  # admin blue first
LABEL_WIDTH = 190
ROW_HEIGHT = 26


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # an interval drawn as whiskers around the value
    high: float | None = None


def bar_chart(bars: Sequence[Bar], *, title: str, value_format: Callable[[float], str] = "{:,.2f}".format,
              width: int = 560) -> SafeString:
    """Horizontal bars from a zero line (negative values go left), with optional interval whiskers."""
    if not bars:
        return format_html('<p class="chart-empty">{}: nothing to show yet.</p>', title)
    ends = [0.0, *(v for b in bars for v in (b.value, b.low, b.high) if v is not None)]
    lo, hi = min(ends), max(ends)
    span = (hi - lo) or 1.0
    # Room for the value's text at the right, and its interval's.
    plot = width - LABEL_WIDTH - (150 if any(b.low is not None for b in bars) else 70)

    def x(v: float) -> float:
        return round(LABEL_WIDTH + (v - lo) / span * plot, 1)

    rows = []
    for i, bar in enumerate(bars):
        top = 24 + i * ROW_HEIGHT
        left, right = sorted((x(0), x(bar.value)))
        rows.append(format_html(
            '<text x="{}" y="{}" text-anchor="end">{}</text>'
            '<rect x="{}" y="{}" width="{}" height="16" fill="{}"><title>{}: {}</title></rect>'
            '<text x="{}" y="{}">{}</text>',
            LABEL_WIDTH - 6, top + 12, bar.label,
            left, top, round(max(right - left, 1), 1), COLOURS[i % len(COLOURS)], bar.label, value_format(bar.value),
            round(x(max(0.0, bar.value, bar.high if bar.high is not None else 0.0)) + 6, 1), top + 12,
            value_format(bar.value) if bar.low is None or bar.high is None
            else f"{value_format(bar.value)} [{value_format(bar.low)}, {value_format(bar.high)}]",
        ))
        if bar.low is not None and bar.high is not None:
            rows.append(format_html(
                '<path d="M{a},{m} H{b} M{a},{t} V{u} M{b},{t} V{u}" stroke="#333" fill="none">'
                "<title>interval {lo} to {hi}</title></path>",
                a=x(bar.low), b=x(bar.high), m=top + 8, t=top + 3, u=top + 13,
                lo=value_format(bar.low), hi=value_format(bar.high),
            ))
    # An axis under the bars, its ticks at both ends and at zero, so that lengths and intervals can be read.
    axis_y = 24 + len(bars) * ROW_HEIGHT
    ticks_at = [v for v in dict.fromkeys((lo, 0.0, hi)) if v == 0.0 or abs(x(v) - x(0)) > 32]  # labels apart
    ticks = format_html_join("", '<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#999"/>'
                             '<text x="{0}" y="{3}" text-anchor="middle">{4}</text>',
                             ((x(v), axis_y, axis_y + 4, axis_y + 16, value_format(v)) for v in ticks_at))
    axis = format_html('<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="#999"/>{}', x(lo), x(hi), ticks, y=axis_y)
    height = axis_y + 24
    zero = format_html('<line x1="{0}" x2="{0}" y1="18" y2="{1}" stroke="#999"/>', x(0), axis_y)
    return _svg(title, width, height,
                format_html("{}{}{}", zero, axis, format_html_join("", "{}", ((r,) for r in rows))))


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str,
               x_format: Callable[[float], str] = "{:g}".format, y_format: Callable[[float], str] = "{:g}".format,
               x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
               diagonal: str | None = None, width: int = 420, height: int = 280) -> SafeString:
    """Lines through (x, y) points, one per named series; `diagonal` names a dashed y = x reference line."""
    points = [p for values in series.values() for p in values]
    if not points:
        return format_html('<p class="chart-empty">{}: nothing to show yet.</p>', title)
    x0, x1 = x_range or (min(p[0] for p in points), max(p[0] for p in points))
    y0, y1 = y_range or (min(0.0, *(p[1] for p in points)), max(p[1] for p in points))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, bottom = 64, width - 16, 24, height - 56

    def px(x: float) -> float:
        return round(left + (x - x0) / (x1 - x0) * (right - left), 1)

    def py(y: float) -> float:
        return round(bottom - (y - y0) / (y1 - y0) * (bottom - top), 1)

    parts = [format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#ccc"/>',
                         left, top, right - left, bottom - top)]
    for fraction in (0, 0.5, 1):
        xv, yv = x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0)
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>',
            px(xv), bottom + 16, x_format(xv), left - 6, round(py(yv) + 4, 1), y_format(yv)))
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>',
            px(lo), py(lo), px(hi), py(hi)))
    legend = [(diagonal, "#999")] if diagonal else []
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        legend.append((name, colour))
        path = " ".join(f"{px(x)},{py(y)}" for x, y in values)
        parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, colour))
        parts.extend(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {}, {}</title>'
                                 "</circle>", px(x), py(y), colour, name, x_format(x), y_format(y))
                     for x, y in values)
    parts.extend(format_html('<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>',
                             left + i * 150, height - 22, colour, left + 14 + i * 150, height - 13, name)
                 for i, (name, colour) in enumerate(legend))
    return _svg(title, width, height, format_html_join("", "{}", ((p,) for p in parts)))


def _svg(title: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<figure class="foresight-chart"><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{t}" font-size="11" font-family="sans-serif">'
        '<title>{t}</title><text x="4" y="13" font-weight="bold">{t}</text>{b}</svg></figure>',
        w=width, h=height, t=title, b=body)
