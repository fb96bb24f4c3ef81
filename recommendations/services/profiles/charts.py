"""Tiny server-side SVG charts for the admin dashboard (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

PALETTE = ["#417690", "#e07a5f", "#81b29a", "#f2cc8f", "#3d405b", "#9c6644", "#6d597a", "#b56576"]


def _empty() -> SafeString:
    return format_html('<p class="rec-empty">{}</p>', gettext("No data yet."))


def _legend(names: Sequence[str], x: float, y: float) -> str:
    parts = []
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{y + i * 16}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + i * 16 + 9}" font-size="11">{escape(name)}</text>'
        )
    return "".join(parts)


def bar_chart(
    values: Mapping[str, float], *, width: int = 560, bar_height: int = 18, unit: str = ""
) -> SafeString:
    """Horizontal bars, one per key: the full label above its bar, the value (with ``unit``) after it.

    Labels get their own line so long names (segments, placements) are never cut.
    """
    if not values:
        return _empty()
    top = max(values.values()) or 1.0
    row_height = bar_height + 16
    height = row_height * len(values) + 6
    rows = []
    for i, (label, value) in enumerate(values.items()):
        y = 4 + i * row_height
        length = (width - 90) * (value / top)
        shown = f"{value:g}{unit}"
        rows.append(
            f'<g class="rec-bar"><text class="rec-bar-label" x="0" y="{y + 11}" font-size="12">'
            f"{escape(str(label))}</text>"
            f'<rect x="0" y="{y + 15}" width="{max(length, 1):.1f}" height="{bar_height - 4}" '
            f'fill="{PALETTE[0]}"><title>{escape(str(label))}: {escape(shown)}</title></rect>'
            f'<text class="rec-bar-value" x="{length + 6:.1f}" y="{y + 15 + bar_height * 0.6:.1f}" '
            f'font-size="11">{escape(shown)}</text></g>'
        )
    return mark_safe(
        f'<svg class="rec-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(rows)}</svg>'
    )


def _tick(value: float, unit: str) -> str:
    return f"{value:,.4g}{unit}"


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    width: int = 640,
    height: int = 220,
    unit: str = "",
    y_max: float | None = None,
) -> SafeString:
    """One polyline per series over shared x labels, with a y axis in ``unit``.

    The y axis runs from 0 to ``y_max`` (the largest value when None) with a tick at the middle;
    every point carries its value as a tooltip. At most 12 x labels are printed all; more print
    the first and the last only.
    """
    if not x_labels or not series:
        return _empty()
    left, right, top, bottom = 56, 170, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = y_max or max((max(values) for values in series.values() if len(values)), default=0) or 1.0
    step = plot_w / max(len(x_labels) - 1, 1)
    lines = []
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coordinates = [(left + j * step, top + plot_h - plot_h * (v / peak)) for j, v in enumerate(values)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(name)} '
            f"{escape(x_labels[j])}: {escape(_tick(values[j], unit))}</title></circle>"
            for j, (x, y) in enumerate(coordinates)
        )
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>{dots}'
        )
    ticks = "".join(
        f'<text class="rec-y-tick" x="{left - 4}" y="{top + plot_h - plot_h * share + 4:.1f}" '
        f'font-size="10" text-anchor="end">{escape(_tick(peak * share, unit))}</text>'
        f'<line x1="{left}" y1="{top + plot_h - plot_h * share:.1f}" x2="{left + plot_w}" '
        f'y2="{top + plot_h - plot_h * share:.1f}" stroke="#ddd"/>'
        for share in (0.0, 0.5, 1.0)
    )
    shown = (
        list(enumerate(x_labels))
        if len(x_labels) <= 12
        else [(0, x_labels[0]), (len(x_labels) - 1, x_labels[-1])]
    )
    x_ticks = "".join(
        f'<text class="rec-x-tick" x="{left + j * step:.1f}" y="{height - 8}" font-size="10" '
        f'text-anchor="middle">{escape(label)}</text>'
        for j, label in shown
    )
    axis = f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>'
    legend = _legend(list(series), left + plot_w + 12, top)
    return mark_safe(
        f'<svg class="rec-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{ticks}{axis}{x_ticks}{"".join(lines)}{legend}</svg>'
    )
