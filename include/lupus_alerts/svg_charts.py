"""Bar charts as inline SVG, rendered on the server: no JavaScript, no CDN, works offline.

The operator dashboard in the Airflow UI draws its charts with these two functions. Each
returns one `<svg>` element as a string, ready to be inlined into an HTML page (the caller
marks it safe). Every piece of text that reaches the SVG (titles, category labels, series
names: feed names and topics come from configuration and from the internet) is escaped here,
so the output is well-formed XML whatever the input. Bars are proportional to their values on
a linear axis from zero to a "nice" maximum; each bar carries its exact value in a `<title>`
(a tooltip without JavaScript) and in `data-value`. No data gives a chart that says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OTHER_COLOUR = "#999999"
FONT = "font-family:system-ui,sans-serif"
CHAR_W = 6.5  # px per character at 11 px: enough to lay out legends and labels without a font


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked layer: a name for the legend and one value per category."""

    name: str
    values: Sequence[float]
    colour: str | None = None


# Characters XML 1.0 forbids even escaped (C0 controls but tab/newline/CR, lone surrogates,
# U+FFFE/U+FFFF): dropped, so a stray control character in a name cannot break the document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _e(text: object) -> str:
    return escape(_NOT_XML.sub("", str(text)), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def axis(value: float, *, ticks: int = 4) -> tuple[float, float]:
    """(top, step) of a zero-based axis for values up to `value`: the step a 1, 2 or 5 × 10^k
    (whole numbers when `value` is, as counts are) giving at most `ticks` steps, the top the
    first multiple of it at or above `value` (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0, 1.0
    raw = value / ticks
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 5, 10) if m * exp >= raw - 1e-12)
    if float(value).is_integer():
        step = max(step, 1.0)
    return step * math.ceil(value / step - 1e-9), step


def nice_max(value: float) -> float:
    """The top of the axis `axis` draws for values up to `value`."""
    return axis(value)[0]


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


def _open(width: float, height: float, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{_num(width)}" '
        f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" role="img" style="{FONT}">',
        f"<title>{_e(title)}</title>",
        f"<desc>{_e(desc)}</desc>",
        f'<text x="0" y="14" font-size="13" font-weight="600" fill="#222">{_e(title)}</text>',
    ]


def _empty(width: float, title: str, message: str) -> str:
    height = 80
    parts = _open(width, height, title, message)
    parts.append(
        f'<text class="empty" x="{_num(width / 2)}" y="50" font-size="12" fill="#666" '
        f'text-anchor="middle">{_e(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend(
    series: Sequence[Series], colours: Sequence[str], width: float, y: float
) -> tuple[list[str], float]:
    """Legend swatches laid out in rows from `y`; returns the elements and the height used."""
    parts: list[str] = []
    x, row = 0.0, 0
    for s, colour in zip(series, colours, strict=True):
        item_w = 16 + CHAR_W * len(s.name) + 14
        if x > 0 and x + item_w > width:
            x, row = 0.0, row + 1
        yy = y + row * 16
        parts.append(
            f'<g class="legend-item"><rect x="{_num(x)}" y="{_num(yy)}" width="10" height="10" '
            f'fill="{_e(colour)}"/><text x="{_num(x + 14)}" y="{_num(yy + 9)}" font-size="11" '
            f'fill="#333">{_e(s.name)}</text></g>'
        )
        x += item_w
    return parts, (row + 1) * 16 if series else 0


def stacked_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: float = 900,
    plot_height: float = 160,
    label_every: int | None = None,
    empty_message: str = "No data in this period.",
) -> str:
    """Vertical bars, one per category (e.g. a day), each a stack of the series' values.

    Raises ValueError when a series has not exactly one value per category, or a negative one.
    """
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(categories)} categories")
        if any(v < 0 for v in s.values):
            raise ValueError(f"series {s.name!r} has a negative value")
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    if not categories or not any(totals):
        return _empty(width, title, empty_message)
    colours = [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    left, right = 40.0, 8.0
    legend, legend_h = _legend(series, colours, width, 24)
    top = 24 + legend_h + 6
    plot_w = width - left - right
    bottom_labels = 28
    height = top + plot_height + bottom_labels
    y_max, step = axis(max(totals))
    parts = _open(width, height, title, f"{len(categories)} categories, {len(series)} series")
    parts += legend
    base = top + plot_height
    for k in range(round(y_max / step) + 1):  # gridlines and y labels at each step
        v = step * k
        y = base - plot_height * v / y_max
        parts.append(
            f'<line x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(y)}" y2="{_num(y)}" '
            f'stroke="#e3e3e3"/><text class="tick" x="{_num(left - 4)}" y="{_num(y + 4)}" '
            f'font-size="10" fill="#666" text-anchor="end">{_e(_fmt(v))}</text>'
        )
    slot = plot_w / len(categories)
    bar_w = max(1.0, slot * 0.8)
    every = label_every or max(1, math.ceil(len(categories) * 40 / plot_w))
    for i, cat in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        y = base
        for s, colour in zip(series, colours, strict=True):
            v = s.values[i]
            if v <= 0:
                continue
            h = plot_height * v / y_max
            y -= h
            parts.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w)}" height="{h:.3f}" '
                f'fill="{_e(colour)}" data-series="{_e(s.name)}" data-category="{_e(cat)}" '
                f'data-value="{_e(_fmt(v))}"><title>{_e(cat)} · {_e(s.name)}: {_e(_fmt(v))}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="category" x="{_num(left + i * slot + slot / 2)}" y="{_num(base + 14)}" '
                f'font-size="10" fill="#444" text-anchor="middle">{_e(cat)}</text>'
            )
    parts.append(
        f'<line x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(base)}" y2="{_num(base)}" '
        'stroke="#888"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(
    rows: Sequence[tuple[str, float]],
    *,
    title: str,
    width: float = 900,
    colours: Sequence[str] | None = None,
    value_labels: Sequence[str] | None = None,
    empty_message: str = "No data in this period.",
) -> str:
    """One horizontal bar per (label, value), labelled on the left, its value (or
    `value_labels[i]`) on the right. Raises ValueError for a negative value or mismatched lists."""
    if any(v < 0 for _, v in rows):
        raise ValueError("horizontal_bars takes no negative values")
    for name, extra in (("colours", colours), ("value_labels", value_labels)):
        if extra is not None and len(extra) != len(rows):
            raise ValueError(f"{name} must have one entry per row")
    if not rows:
        return _empty(width, title, empty_message)
    label_w = min(260.0, max(60.0, CHAR_W * max(len(label) for label, _ in rows) + 8))
    value_w = 150.0 if value_labels else 50.0
    bar_h, gap, top = 16.0, 6.0, 26.0
    plot_w = width - label_w - value_w
    height = top + len(rows) * (bar_h + gap) + 4
    v_max = nice_max(max(v for _, v in rows))
    parts = _open(width, height, title, f"{len(rows)} bars")
    max_chars = int((label_w - 8) / CHAR_W)
    for i, (label, v) in enumerate(rows):
        y = top + i * (bar_h + gap)
        colour = colours[i] if colours else PALETTE[0]
        shown = label if len(label) <= max_chars else label[: max(1, max_chars - 1)] + "…"
        w = plot_w * v / v_max
        text = value_labels[i] if value_labels else _fmt(v)
        parts.append(
            f'<text class="label" x="{_num(label_w - 8)}" y="{_num(y + 12)}" font-size="11" fill="#333" '
            f'text-anchor="end">{_e(shown)}<title>{_e(label)}</title></text>'
            f'<rect class="bar" x="{_num(label_w)}" y="{_num(y)}" width="{w:.3f}" height="{_num(bar_h)}" '
            f'fill="{_e(colour)}" data-category="{_e(label)}" data-value="{_e(_fmt(v))}">'
            f"<title>{_e(label)}: {_e(text)}</title></rect>"
            f'<text class="value" x="{_num(label_w + w + 4)}" y="{_num(y + 12)}" font-size="11" '
            f'fill="#333">{_e(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
