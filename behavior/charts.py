"""Small inline SVG charts for the admin pages: no JavaScript and nothing fetched, so they render offline.

Every label goes through format_html, so a campaign or stage name cannot inject markup. Text, axes and whiskers
are drawn in currentColor, the colour of the page around the chart (the admin's var(--body-fg)), so they read in
the admin's light and dark themes alike; only bars and lines have colours of their own. A chart is as wide as its
texts need: their widths are estimated from their characters (text_width), as nothing measures a font here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Admin blue first; each keeps 3:1 or more (what shapes need) against the light theme's white and the dark
# theme's #121212. Labels and values are text in currentColor beside the bars, not on them.
COLOURS = ["#417690", "#e08a2c", "#6a9a3c", "#c05a85", "#8a80c0"]
FONT_SIZE = 11
ROW_HEIGHT = 26
GAP = 8  # pixels between two texts side by side
GUIDE = "currentColor"  # axes, frames and reference lines, drawn at GUIDE_OPACITY: quieter than text in any theme
GUIDE_OPACITY = 0.45

# Advance widths in ems, rounded up from DejaVu Sans (the sans-serif of Debian and its Chromium); narrower
# fonts (Helvetica, Arial) only leave more room.
_NARROW = dict.fromkeys(" .,:;'!|ilIj[]()", 0.34) | dict.fromkeys("frt/-", 0.42)
_WIDE = dict.fromkeys("%", 0.96) | dict.fromkeys("+=<>~", 0.84) | dict.fromkeys("mwMW@", 1.0)


def text_width(text: str, *, size: float = FONT_SIZE, bold: bool = False) -> float:
    """The width a text takes in the charts' font, estimated from its characters: a little over, never under."""
    ems = sum(_NARROW.get(c) or _WIDE.get(c) or (0.76 if c.isupper() else 0.64) for c in text)
    return ems * size * (1.1 if bold else 1.0)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # an interval drawn as whiskers around the value
    high: float | None = None


def bar_chart(bars: Sequence[Bar], *, title: str, value_format: Callable[[float], str] = "{:,.2f}".format,
              width: int = 560) -> SafeString:
    """Horizontal bars from a zero line (negative values go left), with optional interval whiskers.

    The labels' column and the room right of the bars fit their texts; the chart grows past `width` rather
    than leave the bars less than 160 pixels."""
    if not bars:
        return format_html('<p class="chart-empty">{}: nothing to show yet.</p>', title)
    values = [value_format(b.value) if b.low is None or b.high is None
              else f"{value_format(b.value)} [{value_format(b.low)}, {value_format(b.high)}]" for b in bars]
    ends = [0.0, *(v for b in bars for v in (b.value, b.low, b.high) if v is not None)]
    lo, hi = min(ends), max(ends)
    span = (hi - lo) or 1.0
    # Left of the bars: the longest label, or half the axis's first label, centred on the bars' start.
    label_width = round(max(*(text_width(b.label) for b in bars), text_width(value_format(lo)) / 2) + 2 * GAP)
    # Right of the bars: the longest value's text, or half the axis's last label, centred on the bars' end.
    room = round(max(*(text_width(v) for v in values), text_width(value_format(hi)) / 2) + 2 * GAP)
    plot = max(width - label_width - room, 160)

    def x(v: float) -> float:
        return round(label_width + (v - lo) / span * plot, 1)

    rows = []
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        top = 24 + i * ROW_HEIGHT
        left, right = sorted((x(0), x(bar.value)))
        rows.append(format_html(
            '<text x="{}" y="{}" text-anchor="end">{}</text>'
            '<rect x="{}" y="{}" width="{}" height="16" fill="{}"><title>{}: {}</title></rect>'
            '<text x="{}" y="{}">{}</text>',
            label_width - GAP, top + 12, bar.label,
            left, top, round(max(right - left, 1), 1), COLOURS[i % len(COLOURS)], bar.label, value_format(bar.value),
            round(x(max(0.0, bar.value, bar.high if bar.high is not None else 0.0)) + 6, 1), top + 12, value,
        ))
        if bar.low is not None and bar.high is not None:
            rows.append(format_html(
                '<path d="M{a},{m} H{b} M{a},{t} V{u} M{b},{t} V{u}" stroke="currentColor" stroke-width="1.5" '
                'fill="none"><title>interval {lo} to {hi}</title></path>',
                a=x(bar.low), b=x(bar.high), m=top + 8, t=top + 3, u=top + 13,
                lo=value_format(bar.low), hi=value_format(bar.high),
            ))
    # An axis under the bars, its ticks at zero and at both ends where their labels keep apart, so that
    # lengths and intervals can be read.
    axis_y = 24 + len(bars) * ROW_HEIGHT
    ticks = format_html_join("", '<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" {3}/>'
                                 '<text x="{0}" y="{4}" text-anchor="middle">{5}</text>',
                             ((at, axis_y, axis_y + 4, _guide(), axis_y + 16, text)
                              for at, text in _apart([(x(v), value_format(v)) for v in (0.0, lo, hi)])))
    axis = format_html('<line x1="{}" x2="{}" y1="{y}" y2="{y}" {}/>{}', x(lo), x(hi), _guide(), ticks, y=axis_y)
    zero = format_html('<line x1="{0}" x2="{0}" y1="18" y2="{1}" {2}/>', x(0), axis_y, _guide())
    return _svg(title, label_width + plot + room, axis_y + 24,
                format_html("{}{}{}", zero, axis, format_html_join("", "{}", ((r,) for r in rows))))


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str,
               x_format: Callable[[float], str] = "{:g}".format, y_format: Callable[[float], str] = "{:g}".format,
               x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
               diagonal: str | None = None, width: int = 420, height: int = 280) -> SafeString:
    """Lines through (x, y) points, one per named series; `diagonal` names a dashed y = x reference line.

    Points at a single x sit in the middle of the chart, between labels of the x a step either side."""
    points = [p for values in series.values() for p in values]
    if not points:
        return format_html('<p class="chart-empty">{}: nothing to show yet.</p>', title)
    x0, x1 = x_range or (min(p[0] for p in points), max(p[0] for p in points))
    y0, y1 = y_range or (min(0.0, *(p[1] for p in points)), max(p[1] for p in points))
    x0, x1 = (x0, x1) if x1 > x0 else (x0 - 1, x0 + 1)
    y1 = y1 if y1 > y0 else y0 + 1
    y_labels = [(y0 + f * (y1 - y0), y_format(y0 + f * (y1 - y0))) for f in (0, 0.5, 1)]
    left = round(max(64, max(text_width(t) for _, t in y_labels) + 2 * GAP))
    legend = [(diagonal, GUIDE)] if diagonal else []
    legend += [(name, COLOURS[i % len(COLOURS)]) for i, name in enumerate(series)]
    legend_at = []  # each entry's x: a swatch, its name, then room before the next
    at = float(left)
    for name, _ in legend:
        legend_at.append(at)
        at += 14 + text_width(name) + 2 * GAP
    width = round(max(width, at))
    right, top, bottom = width - 16, 24, height - 56

    def px(x: float) -> float:
        return round(left + (x - x0) / (x1 - x0) * (right - left), 1)

    def py(y: float) -> float:
        return round(bottom - (y - y0) / (y1 - y0) * (bottom - top), 1)

    parts = [format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="none" {}/>',
                         left, top, right - left, bottom - top, _guide())]
    # x labels at both ends and the middle, each kept inside the chart and apart from the others.
    # (Both ends first: the middle one only where it keeps apart from them.)
    xs = [x0 + f * (x1 - x0) for f in (0, 1, 0.5)]
    x_labels = _apart([(_inside(px(v), x_format(v), width), x_format(v)) for v in xs])
    parts += [format_html('<text x="{}" y="{}" text-anchor="middle">{}</text>', at_x, bottom + 18, text)
              for at_x, text in sorted(x_labels)]
    parts += [format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', left - 6, round(py(yv) + 4, 1), text)
              for yv, text in y_labels]
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        parts.append(format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" {} stroke-dasharray="4 3"/>',
                                 px(lo), py(lo), px(hi), py(hi), _guide()))
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x)},{py(y)}" for x, y in values)
        parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, colour))
        parts.extend(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {}, {}</title>'
                                 "</circle>", px(x), py(y), colour, name, x_format(x), y_format(y))
                     for x, y in values)
    parts.extend(format_html('<rect x="{}" y="{}" width="10" height="10" fill="{}" fill-opacity="{}"/>'
                             '<text x="{}" y="{}">{}</text>', round(at_x, 1), height - 22, colour,
                             GUIDE_OPACITY if colour == GUIDE else 1, round(at_x + 14, 1), height - 13, name)
                 for at_x, (name, colour) in zip(legend_at, legend, strict=True))  # the diagonal's swatch as quiet
    return _svg(title, width, height, format_html_join("", "{}", ((p,) for p in parts)))


def _guide() -> SafeString:
    return format_html('stroke="{}" stroke-opacity="{}"', GUIDE, GUIDE_OPACITY)


def _apart(ticks: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The first tick, then each next one whose centred label keeps GAP pixels from those kept, and says
    something else."""
    kept: list[tuple[float, str]] = []
    for at, text in ticks:
        if all(text != t and abs(at - k) >= (text_width(text) + text_width(t)) / 2 + GAP for k, t in kept):
            kept.append((at, text))
    return kept


def _inside(at: float, text: str, width: float) -> float:
    """Where a label centred at `at` goes so that it stays within the chart's width."""
    half = text_width(text) / 2
    return round(min(max(at, half + 2), width - half - 2), 1)


def _svg(title: str, width: float, height: int, body: SafeString) -> SafeString:
    # At least as wide as the title; fill is the text's colour, so labels follow the page's theme.
    width = round(max(width, text_width(title, bold=True) + 8))
    return format_html(
        '<figure class="foresight-chart"><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{t}" font-size="{s}" font-family="sans-serif" '
        'fill="currentColor"><title>{t}</title><text x="4" y="13" font-weight="bold">{t}</text>{b}</svg></figure>',
        w=width, h=height, s=FONT_SIZE, t=title, b=body)
