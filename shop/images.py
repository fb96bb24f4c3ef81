"""A picture per product, drawn here: an SVG made from its category and name (no files, no downloads).

The colour comes from the category (a shopper sees at a glance that two items belong
together), the motif from the product's own name, and the name is written on the picture, so
every product of the demo catalogue has a distinct, stable image that costs one string format.
"""

from __future__ import annotations

import hashlib
import textwrap

from django.utils.html import escape

SIZE = 320
# (x, y) offsets of three motifs; which one a product gets depends on its name's hash
MOTIFS = (
    '<circle cx="{cx}" cy="{cy}" r="70" fill="{light}"/><circle cx="{cx}" cy="{cy}" r="38" fill="{dark}"/>',
    '<rect x="{x0}" y="{y0}" width="140" height="110" rx="18" fill="{light}"/>'
    '<rect x="{x1}" y="{y1}" width="80" height="60" rx="10" fill="{dark}"/>',
    '<polygon points="{cx},{y0} {x2},{y2} {x0},{y2}" fill="{light}"/>'
    '<circle cx="{cx}" cy="{cy2}" r="22" fill="{dark}"/>',
)


def _hue(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 360


def product_svg(*, name: str, category: str) -> str:
    """The product's picture as an SVG document (square, ``SIZE`` pixels, scalable)."""
    hue = _hue(category)
    motif = MOTIFS[_hue(name) % len(MOTIFS)]
    cx, cy = SIZE // 2, 130
    shape = motif.format(
        cx=cx,
        cy=cy,
        cy2=cy + 20,
        x0=cx - 70,
        y0=cy - 60,
        x1=cx - 40,
        y1=cy - 30,
        x2=cx + 70,
        y2=cy + 55,
        light=f"hsl({hue},55%,82%)",
        dark=f"hsl({hue},45%,45%)",
    )
    lines = textwrap.wrap(name, width=24)[:2] or [""]
    text = "".join(
        f'<text x="{cx}" y="{236 + 24 * i}" font-size="19" font-weight="600" text-anchor="middle" '
        f'fill="hsl({hue},40%,22%)">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" width="{SIZE}" '
        f'height="{SIZE}" role="img"><title>{escape(name)}</title>'
        f'<rect width="{SIZE}" height="{SIZE}" fill="hsl({hue},60%,94%)"/>{shape}{text}'
        f'<text x="{cx}" y="300" font-size="13" text-anchor="middle" letter-spacing="1" '
        f'fill="hsl({hue},30%,40%)">{escape(category.upper())}</text></svg>'
    )
