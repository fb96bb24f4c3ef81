"""The candidate sources beside the network, fitted from a configuration: the item-to-item tables,
popularity and trending.

Each is a plain function of the encoded sequences (or the cleaned log) and the configuration, so
the filter search, the blend search and the final fit build them the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recommendations.core.candidates import covisitation_matrix, itemknn_matrix, transition_matrix
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EVENT_TYPES, EventLog, ItemIndex, Sequences

DAY = 86400.0


def fit_sources(seqs: Sequences, n: int, cfg: NetworkConfig) -> dict[str, Any]:
    """Co-visitation, item-kNN, transitions and popularity fitted on ``seqs`` (``n`` items).

    Returns
    -------
    dict
        ``covisitation``, ``itemknn``, ``transitions``: csr matrices of shape (n, n);
        ``popularity``: ndarray of shape (n,), float64, the event-weighted count of each item.
    """
    type_w = {i + 1: cfg.event_weights.get(t, 0.0) for i, t in enumerate(EVENT_TYPES)}
    cov = covisitation_matrix(
        seqs,
        n,
        window=cfg.covis_window,
        session_gap_hours=cfg.session_gap_hours,
        neighbours=cfg.neighbours,
        types=type_w,
    )
    trans = transition_matrix(seqs, n, neighbours=cfg.neighbours)
    knn = itemknn_matrix(seqs, n, neighbours=cfg.neighbours)
    items = np.concatenate(seqs.items) - 1 if seqs.n_events else np.zeros(0, dtype=np.int64)
    types = np.concatenate(seqs.types) if seqs.n_events else np.zeros(0, dtype=np.int64)
    tw = np.array([0.0] + [cfg.event_weights.get(t, 0.0) for t in EVENT_TYPES])
    pop = np.bincount(items, weights=tw[types], minlength=n).astype(np.float64)
    return {"covisitation": cov, "itemknn": knn, "transitions": trans, "popularity": pop}


def fit_trending(
    clean: EventLog, index: ItemIndex, event_weights: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event weights summed per (item, day), for trending scores at any request time.

    Returns
    -------
    (cols, days, weights) : int64, int64 and float64 arrays of the same length
        Item column, unix day and summed event weight of each (item, day) with events.
    """
    keep = np.array([i in index.index for i in clean.items], dtype=bool)
    cols = np.array([index.index[i] - 1 for i in clean.items[keep]], dtype=np.int64)
    days = np.floor(clean.timestamps[keep] / DAY).astype(np.int64)
    w = np.array([event_weights.get(t, 0.0) for t in clean.event_types[keep]], dtype=np.float64)
    if not len(cols):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    span = days.max() - days.min() + 1
    key = cols * span + (days - days.min())
    uniq, inv = np.unique(key, return_inverse=True)
    sums = np.bincount(inv, weights=w)
    return (uniq // span).astype(np.int64), (uniq % span + days.min()).astype(np.int64), sums


def trending_scores(
    cols: np.ndarray, days: np.ndarray, weights: np.ndarray, now: float, half_life_days: float, n_items: int
) -> np.ndarray:
    """Trending score of every item at ``now``: day sums decayed by age, later days ignored.

    Returns
    -------
    ndarray of shape (n_items,), float64
    """
    hl = half_life_days * DAY
    mid = days * DAY + DAY / 2
    keep = days * DAY <= now
    decay = np.power(0.5, np.maximum(now - mid[keep], 0.0) / hl)
    return np.bincount(cols[keep], weights=weights[keep] * decay, minlength=n_items)
