"""Charts as inline SVG rendered in Python: no JavaScript library, no CDN, nothing minified.

Every chart is a ``markupsafe.Markup`` string; every piece of text that came from data (class,
signal or series names) is escaped here, so a class called ``<script>`` renders as text. Each
data point carries its numbers as ``data-*`` attributes and a ``<title>`` tooltip, which the
browser shows on hover and the tests read back::

    svg = line_chart([Series("p_value", [(t0, "01:00", 0.42), (t1, "02:00", 0.003)])],
                     threshold=0.01, y_label="p-value")
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass
class Series:
    """One line: points ``(x, x_label, y)``; ``flags`` marks points drawn in red (drifted)."""

    name: str
    points: list[tuple[float, str, float]]
    flags: list[bool] = field(default_factory=list)


@lru_cache(maxsize=8192)
def escape(text: str) -> str:
    """Text for SVG content or a quoted attribute (``&<>"'`` escaped); cached, as the same
    series names and axis labels repeat on every point."""
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.6g}"


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _svg_open(width: int, height: int, label: str, kind: str) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" {_FONT}>'
    )


def line_chart(
    series: Sequence[Series],
    *,
    y_label: str = "",
    threshold: float | None = None,
    y_range: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 220,
    name: str = "line",
) -> Markup:
    """Lines over a shared numeric x axis (e.g. epoch seconds), labelled with the x labels."""
    pts = [p for s in series for p in s.points if math.isfinite(p[2])]
    if not pts:
        return Markup('<p class="empty">no data yet</p>')
    left, right, top, bottom = 56, 36, 12, 34
    xs = [p[0] for p in pts]
    ys = [p[2] for p in pts] + ([threshold] if threshold is not None else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range if y_range else (min(0.0, min(ys)), max(ys))
    if y1 <= y0:
        y1 = y0 + 1.0
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (min(max(y, y0), y1) - y0) / (y1 - y0) * ph

    out = [_svg_open(width, height, f"{name}: {y_label}", name)]
    for t in _ticks(y0, y1):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">'
            f"{_num(t)}</text>"
        )
    labelled = sorted({(p[0], p[1]) for p in pts})
    step = max(1, len(labelled) // 6)
    for x, text in labelled[::step]:
        out.append(
            f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
    if y_label:
        out.append(f'<text x="4" y="10" fill="#6b7280">{escape(y_label)}</text>')
    if threshold is not None:
        out.append(
            f'<line class="threshold" data-y="{_num(threshold)}" x1="{left}" '
            f'x2="{width - right}" y1="{sy(threshold):.1f}" y2="{sy(threshold):.1f}" '
            f'stroke="#6b7280" stroke-dasharray="4 3"><title>threshold {_num(threshold)}'
            "</title></line>"
        )
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        good = [p for p in s.points if math.isfinite(p[2])]
        if len(good) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, _, y in good)
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"/>'
            )
        for j, (x, text, y) in enumerate(s.points):
            if not math.isfinite(y):
                continue
            flagged = j < len(s.flags) and s.flags[j]
            fill = "#dc2626" if flagged else color
            out.append(
                f'<circle class="point" data-series="{escape(s.name)}" data-x="{escape(text)}" '
                f'data-y="{_num(y)}" data-flag="{int(flagged)}" cx="{sx(x):.1f}" '
                f'cy="{sy(y):.1f}" r="{4 if flagged else 3}" fill="{fill}"><title>'
                f"{escape(s.name)} {escape(text)}: {_num(y)}{' (drift)' if flagged else ''}"
                "</title></circle>"
            )
    out.append(_legend([s.name for s in series], left, height - 6) if len(series) > 1 else "")
    out.append("</svg>")
    return Markup("".join(out))


def _legend(names: Sequence[str], x: float, y: float) -> str:
    parts = []
    for i, label in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.0f}" y="{y - 8:.0f}" width="8" height="8" fill="{color}"/>'
            f'<text x="{x + 11:.0f}" y="{y:.0f}">{escape(label)}</text>'
        )
        x += 16 + 7 * len(label)
    return "".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    y_label: str = "",
    width: int = 640,
    height: int = 200,
    name: str = "bars",
) -> Markup:
    """Vertical bars, one per ``(label, value)``."""
    if not bars:
        return Markup('<p class="empty">no data yet</p>')
    left, right, top, bottom = 56, 12, 12, 34
    pw, ph = width - left - right, height - top - bottom
    hi = max(max(v for _, v in bars), 1e-12)
    bw = pw / len(bars)
    out = [_svg_open(width, height, f"{name}: {y_label}", name)]
    for t in _ticks(0, hi):
        y = top + ph - t / hi * ph
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_num(t)}</text>'
        )
    step = max(1, len(bars) // 8)
    for i, (label, value) in enumerate(bars):
        h = value / hi * ph
        x = left + i * bw
        out.append(
            f'<rect class="bar" data-x="{escape(label)}" data-y="{_num(value)}" x="{x + 1:.1f}" '
            f'y="{top + ph - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {_num(value)}</title></rect>'
        )
        if i % step == 0:
            out.append(
                f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if y_label:
        out.append(f'<text x="4" y="10" fill="#6b7280">{escape(y_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def delta_bars(
    deltas: Sequence[tuple[str, float]],
    *,
    label: str = "",
    width: int = 640,
    name: str = "deltas",
) -> Markup:
    """Horizontal bars around zero, one per ``(name, delta)``: gains green, losses red."""
    if not deltas:
        return Markup('<p class="empty">no data</p>')
    row, left, right = 18, 8 + 7 * min(16, max(len(n) for n, _ in deltas)), 60
    height = 24 + row * len(deltas)
    span = max(max(abs(d) for _, d in deltas), 1e-9)
    zero = left + (width - left - right) / 2
    half = (width - left - right) / 2
    out = [_svg_open(width, height, f"{name}: {label}", name)]
    out.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="4" y2="{height - 18}" stroke="#6b7280"/>'
        f'<text x="{zero:.1f}" y="{height - 4}" text-anchor="middle">0</text>'
        f'<text x="{zero + half:.1f}" y="{height - 4}" text-anchor="end">+{_num(span)}</text>'
        f'<text x="{left}" y="{height - 4}">-{_num(span)}</text>'
    )
    for i, (key, delta) in enumerate(deltas):
        y = 4 + i * row
        w = abs(delta) / span * half
        x = zero if delta >= 0 else zero - w
        fill = "#16a34a" if delta > 0 else "#dc2626"
        out.append(
            f'<text x="{left - 4}" y="{y + 12}" text-anchor="end">{escape(key[:16])}</text>'
            f'<rect class="delta" data-x="{escape(key)}" data-y="{_num(delta)}" x="{x:.1f}" '
            f'y="{y + 2}" width="{max(w, 0.5):.1f}" height="{row - 5}" fill="{fill}"><title>'
            f"{escape(key)}: {delta:+.4f}</title></rect>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def stacked_bars(
    columns: Sequence[tuple[str, dict[str, float]]],
    *,
    y_label: str = "",
    width: int = 640,
    height: int = 220,
    name: str = "stacked",
    max_keys: int = 8,
) -> Markup:
    """One stacked bar per column (e.g. per hour), segments per key; keys beyond the
    ``max_keys`` most frequent are summed as ``other``. Values are drawn as shares."""
    if not columns:
        return Markup('<p class="empty">no data yet</p>')
    totals: dict[str, float] = {}
    for _, parts in columns:
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + value
    keys = sorted(totals, key=lambda k: (-totals[k], k))[:max_keys]
    if len(totals) > max_keys:
        keys.append("other")
    left, right, top, bottom = 56, 12, 12, 48
    pw, ph = width - left - right, height - top - bottom
    bw = pw / len(columns)
    out = [_svg_open(width, height, f"{name}: {y_label}", name)]
    for t in (0.0, 0.5, 1.0):
        y = top + ph - t * ph
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{t:.0%}</text>'
        )
    step = max(1, len(columns) // 8)
    for i, (label, parts) in enumerate(columns):
        total = sum(parts.values()) or 1.0
        shown = {k: parts.get(k, 0.0) for k in keys if k != "other"}
        if "other" in keys:
            shown["other"] = total - sum(shown.values())
        y = top + ph
        x = left + i * bw
        for k_i, key in enumerate(keys):
            share = shown.get(key, 0.0) / total
            if share <= 0:
                continue
            h = share * ph
            y -= h
            out.append(
                f'<rect class="segment" data-x="{escape(label)}" data-key="{escape(key)}" '
                f'data-y="{_num(shown[key])}" x="{x + 1:.1f}" y="{y:.1f}" '
                f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k_i % len(PALETTE)]}"><title>{escape(label)} {escape(key)}: '
                f"{_num(shown[key])} ({share:.0%})</title></rect>"
            )
        if i % step == 0:
            out.append(
                f'<text x="{x + bw / 2:.1f}" y="{top + ph + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    out.append(_legend(keys, left, height - 6))
    if y_label:
        out.append(f'<text x="4" y="10" fill="#6b7280">{escape(y_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def heatmap(
    matrix: Sequence[Sequence[float]],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    name: str = "confusion",
    cell: int = 0,
) -> Markup:
    """A matrix (e.g. confusion: rows true, columns predicted) with counts in the cells."""
    n_rows, n_cols = len(matrix), len(matrix[0]) if matrix else 0
    if not n_rows or not n_cols:
        return Markup('<p class="empty">no data</p>')
    cell = cell or max(14, min(40, 480 // max(n_rows, n_cols)))
    label_w = 8 + 7 * min(16, max(len(str(r)) for r in rows))
    width, height = label_w + n_cols * cell + 8, label_w + n_rows * cell + 8
    hi = max(max(r) for r in matrix) or 1
    out = [_svg_open(width, height, f"{name} matrix", name)]
    for j, c in enumerate(cols):
        x = label_w + j * cell + cell / 2
        out.append(
            f'<text transform="translate({x:.1f},{label_w - 4}) rotate(-60)">'
            f"{escape(str(c)[:16])}</text>"
        )
    for i, r in enumerate(rows):
        y = label_w + i * cell
        out.append(
            f'<text x="{label_w - 4}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(str(r)[:16])}</text>"
        )
        for j, value in enumerate(matrix[i]):
            share = value / hi
            fill = f"rgba(37,99,235,{0.08 + 0.92 * share:.3f})"
            text = "#fff" if share > 0.5 else "#111"
            out.append(
                f'<rect class="cell" data-row="{escape(str(r))}" data-col="{escape(str(cols[j]))}"'
                f' data-y="{_num(value)}" x="{label_w + j * cell}" y="{y}" width="{cell - 1}" '
                f'height="{cell - 1}" fill="{fill}"><title>true {escape(str(r))}, predicted '
                f"{escape(str(cols[j]))}: {_num(value)}</title></rect>"
            )
            if cell >= 22:
                out.append(
                    f'<text x="{label_w + j * cell + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{text}">{_num(value)}</text>'
                )
    out.append("</svg>")
    return Markup("".join(out))
