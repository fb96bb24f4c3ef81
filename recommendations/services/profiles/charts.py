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
    values: Mapping[str, float], *, width: int = 520, bar_height: int = 18, unit: str = ""
) -> SafeString:
    """Horizontal bars, one per key (label on the left, value on the right)."""
    if not values:
        return _empty()
    top = max(values.values()) or 1.0
    label_width, height = 180, bar_height * len(values) + 10
    rows = []
    for i, (label, value) in enumerate(values.items()):
        y = 5 + i * bar_height
        length = (width - label_width - 70) * (value / top)
        rows.append(
            f'<text x="{label_width - 6}" y="{y + bar_height * 0.7}" font-size="11" text-anchor="end">'
            f"{escape(str(label)[:32])}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{max(length, 0):.1f}" height="{bar_height - 4}" '
            f'fill="{PALETTE[0]}"><title>{escape(str(label))}: {value:g}{unit}</title></rect>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + bar_height * 0.7}" font-size="11">'
            f"{value:g}{unit}</text>"
        )
    return mark_safe(
        f'<svg class="rec-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(rows)}</svg>'
    )


def line_chart(
    x_labels: Sequence[str], series: Mapping[str, Sequence[float]], *, width: int = 640, height: int = 220
) -> SafeString:
    """One polyline per series over shared x labels (first and last label printed)."""
    if not x_labels or not series:
        return _empty()
    left, right, top, bottom = 40, 150, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(values) for values in series.values() if len(values)), default=0) or 1.0
    step = plot_w / max(len(x_labels) - 1, 1)
    lines = []
    for i, (name, values) in enumerate(series.items()):
        points = " ".join(
            f"{left + j * step:.1f},{top + plot_h - plot_h * (v / peak):.1f}" for j, v in enumerate(values)
        )
        lines.append(
            f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>'
        )
    axis = (
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>'
        f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">{peak:g}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 8}" font-size="10">{escape(x_labels[0])}</text>'
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"{escape(x_labels[-1])}</text>"
    )
    legend = _legend(list(series), left + plot_w + 12, top)
    return mark_safe(
        f'<svg class="rec-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{axis}{"".join(lines)}{legend}</svg>'
    )
