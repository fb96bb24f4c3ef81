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
# Purchase occasions, read by the linear model only (the network head's input keeps the columns
# above, so artefacts of earlier releases keep loading): the "frequency" of RFM counts the days
# a shopper bought on, not the purchase events, and the peers' cart-minus-purchase keeps its sign.
OCCASION_FEATURE_NAMES = ("purchase_days", "purchase_day_share", "cart_minus_purchase")
LINEAR_FEATURE_NAMES = tuple(FEATURE_NAMES) + OCCASION_FEATURE_NAMES
_NEVER_H = 24.0 * 365


def scalar_features(histories: Sequence[History], now: float, *, occasions: bool = False) -> np.ndarray:
    """Recency / frequency / funnel features of each shopper from events strictly before ``now``.

    Parameters
    ----------
    histories : sequence of History
    now : float
        Unix seconds; later events are ignored.
    occasions : bool
        Also the purchase-occasion columns (:data:`OCCASION_FEATURE_NAMES`).

    Returns
    -------
    ndarray of shape (len(histories), N_FEATURES) or (len(histories), len(LINEAR_FEATURE_NAMES)), float32
        ``log1p`` of counts and hours (see :data:`FEATURE_NAMES`); then purchase days (``log1p``),
        their share of the active days, and the signed ``log1p`` of carts minus purchases.
    """
    lens = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    owner = np.repeat(np.arange(len(histories)), lens)
    items = np.fromiter((str(i) for h in histories for i, _, _ in h), dtype=object, count=int(lens.sum()))
    types = np.fromiter((str(t) for h in histories for _, t, _ in h), dtype=object, count=int(lens.sum()))
    stamps = np.fromiter(
        (float(ts) for h in histories for _, _, ts in h), dtype=np.float64, count=int(lens.sum())
    )
    return features_from_arrays(owner, len(histories), items, types, stamps, now, occasions=occasions)


def features_from_arrays(
    owner: np.ndarray,
    n: int,
    items: np.ndarray,
    types: np.ndarray,
    stamps: np.ndarray,
    now: float,
    *,
    occasions: bool = False,
) -> np.ndarray:
    """:func:`scalar_features` of ``n`` shoppers from flat event arrays, vectorised (no per-event Python).

    Parameters
    ----------
    owner : ndarray of shape (m,), int
        Shopper row (``0..n-1``) of each event.
    items, types : ndarray of shape (m,), object
        Item keys and event type names.
    stamps : ndarray of shape (m,), float64
        Unix seconds; events at or after ``now`` are ignored.
    occasions : bool
        Also the purchase-occasion columns (see :func:`scalar_features`).
    """
    keep = stamps < now
    o, ts = np.asarray(owner, dtype=np.int64)[keep], stamps[keep]
    out = np.zeros((n, N_FEATURES), dtype=np.float64)
    count = np.bincount(o, minlength=n).astype(np.float64)
    has = count > 0
    t_max = np.full(n, -np.inf)
    t_min = np.full(n, np.inf)
    np.maximum.at(t_max, o, ts)
    np.minimum.at(t_min, o, ts)
    out[:, 0] = np.where(has, (now - t_max) / HOUR, _NEVER_H)
    out[:, 1] = count
    if len(o):
        _, item_code = np.unique(items[keep], return_inverse=True)
        width = int(item_code.max()) + 1
        out[:, 2] = np.bincount(np.unique(o * width + item_code) // width, minlength=n)
        day = np.floor(ts / DAY).astype(np.int64)
        day -= day.min()
        span = int(day.max()) + 1
        out[:, 3] = np.bincount(np.unique(o * span + day) // span, minlength=n)
    names, type_code = np.unique(types[keep], return_inverse=True)
    lookup = np.array([COUNTED_TYPES.index(t) if t in COUNTED_TYPES else -1 for t in names], dtype=np.int64)
    kind = lookup[type_code] if len(names) else np.zeros(0, dtype=np.int64)
    k = len(COUNTED_TYPES)
    counted = kind >= 0
    recent = ts >= now - DAY
    counts = np.bincount(o[counted] * k + kind[counted], minlength=n * k).reshape(n, k)
    counts24 = np.bincount(o[counted & recent] * k + kind[counted & recent], minlength=n * k).reshape(n, k)
    cart, buy = COUNTED_TYPES.index("add_to_cart"), COUNTED_TYPES.index("purchase")
    out[:, 4] = np.maximum(counts[:, cart] - counts[:, buy], 0.0)
    for col, j in ((5, cart), (6, buy)):
        last = np.full(n, -np.inf)
        np.maximum.at(last, o[kind == j], ts[kind == j])
        out[:, col] = np.where(np.isfinite(last), (now - last) / HOUR, _NEVER_H)
    out[:, 7] = np.bincount(o[recent], minlength=n)
    out[:, 8] = np.where(has, (t_max - t_min) / DAY, 0.0)
    base = 9
    out[:, base : base + k] = counts
    out[:, base + k :] = counts24
    logged = np.log1p(np.minimum(out, _NEVER_H))
    if not occasions:
        return logged.astype(np.float32)
    bought = kind == buy
    buy_days = np.zeros(n)
    if bought.any():
        day = np.floor(ts[bought] / DAY).astype(np.int64)
        day -= day.min()
        span = int(day.max()) + 1
        buy_days = np.bincount(np.unique(o[bought] * span + day) // span, minlength=n).astype(np.float64)
    net_carts = counts[:, cart] - counts[:, buy]
    extra = np.column_stack(
        [
            np.log1p(buy_days),
            buy_days / np.maximum(out[:, 3], 1.0),
            np.sign(net_carts) * np.log1p(np.abs(net_carts)),
        ]
    )
    return np.hstack([logged, extra]).astype(np.float32)


def label_cuts(t_min: float, t_max: float, horizon: float, *, max_cuts: int = 8) -> tuple[list[float], float]:
    """Time cuts of the head's training examples, and the label window after each.

    Each cut has the label window (``horizon`` seconds) after it, before the newest event
    ``t_max``, and at least half a window (or a day) of history before it, from ``t_min`` on;
    consecutive cuts lie half a window (at least a day) apart, at most ``max_cuts`` of them.

    A log shorter than that (a week's export against the default 7-day horizon) would train no
    head at all and leave every shopper with the same score. The window then shrinks to a third
    of the log's span, which leaves several cuts: the head learns who buys soon, which orders
    shoppers much as who buys within the longer window would (on a week of Taobao, through the
    product's own commands: ROC-AUC 0.578 on the next two days' purchases, where without a head
    every shopper got 0 and 0.50). The window actually used is returned so that the report can
    say which question the head answers.

    Returns
    -------
    (cuts, window) : list of unix seconds, newest first, and the window in seconds
    """

    def cuts_for(window: float) -> list[float]:
        step = max(window / 2, DAY)
        cuts = [t_max - window - k * step for k in range(max_cuts)]
        return [c for c in cuts if c - t_min >= min(step, window)]

    if horizon <= 0:
        return [], horizon
    cuts = cuts_for(horizon)
    shorter = (t_max - t_min) / 3
    if cuts or shorter <= 0:
        return cuts, horizon
    return cuts_for(shorter), shorter


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
