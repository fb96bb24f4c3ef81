"""Scalar features and time-cut labels for the purchase-propensity head (no look-ahead)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recommendations.core.dataset import History

HOUR = 3600.0
DAY = 86400.0
COUNTED_TYPES = ("view", "click", "add_to_cart", "remove_from_cart", "wishlist", "purchase")
FEATURE_NAMES = (
    [
        "recency_h",
        "events",
        "items",
        "active_days",
        "cart_not_bought",
        "hours_since_cart",
        "hours_since_purchase",
        "events_24h",
        "span_days",
    ]
    + [f"n_{t}" for t in COUNTED_TYPES]
    + [f"n_{t}_24h" for t in COUNTED_TYPES]
)
N_FEATURES = len(FEATURE_NAMES)
_NEVER_H = 24.0 * 365


def scalar_features(histories: Sequence[History], now: float) -> np.ndarray:
    """Recency / frequency / funnel features of each shopper from events strictly before ``now``.

    Parameters
    ----------
    histories : sequence of History
    now : float
        Unix seconds; later events are ignored.

    Returns
    -------
    ndarray of shape (len(histories), N_FEATURES), float32
        ``log1p`` of counts and hours (see :data:`FEATURE_NAMES`).
    """
    out = np.zeros((len(histories), N_FEATURES), dtype=np.float64)
    pos = {t: i for i, t in enumerate(COUNTED_TYPES)}
    base = 9
    for r, hist in enumerate(histories):
        rows = [(float(ts), str(item), str(t)) for item, t, ts in hist if float(ts) < now]
        if not rows:
            out[r, 0] = _NEVER_H
            out[r, 5] = out[r, 6] = _NEVER_H
            continue
        times = np.array([x[0] for x in rows])
        counts = np.zeros(len(COUNTED_TYPES))
        counts24 = np.zeros(len(COUNTED_TYPES))
        last_cart = last_buy = -np.inf
        for ts, _, t in rows:
            j = pos.get(t)
            if j is None:
                continue
            counts[j] += 1
            if ts >= now - DAY:
                counts24[j] += 1
            if t == "add_to_cart":
                last_cart = max(last_cart, ts)
            elif t == "purchase":
                last_buy = max(last_buy, ts)
        out[r, 0] = (now - times.max()) / HOUR
        out[r, 1] = len(rows)
        out[r, 2] = len({x[1] for x in rows})
        out[r, 3] = len(np.unique(np.floor(times / DAY)))
        out[r, 4] = max(counts[pos["add_to_cart"]] - counts[pos["purchase"]], 0.0)
        out[r, 5] = (now - last_cart) / HOUR if np.isfinite(last_cart) else _NEVER_H
        out[r, 6] = (now - last_buy) / HOUR if np.isfinite(last_buy) else _NEVER_H
        out[r, 7] = float(np.sum(times >= now - DAY))
        out[r, 8] = (times.max() - times.min()) / DAY
        out[r, base : base + len(COUNTED_TYPES)] = counts
        out[r, base + len(COUNTED_TYPES) :] = counts24
    return np.log1p(np.minimum(out, _NEVER_H)).astype(np.float32)


def purchase_labels(histories: Sequence[History], start: float, end: float) -> np.ndarray:
    """1 where the shopper has a purchase event in ``[start, end)``.

    Returns
    -------
    ndarray of shape (len(histories),), float32
    """
    return np.array(
        [float(any(t == "purchase" and start <= float(ts) < end for _, t, ts in h)) for h in histories],
        dtype=np.float32,
    )


def truncate(histories: Sequence[History], before: float) -> list[list[tuple[str, str, float]]]:
    """Each history restricted to events strictly before ``before``."""
    return [[(i, t, float(ts)) for i, t, ts in h if float(ts) < before] for h in histories]
