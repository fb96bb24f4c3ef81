"""DBSCAN outliers for risk review: bots, fraud-like bursts, unusual order values.

DBSCAN runs on a random sample (it is quadratic in the worst case) and on a reduced set
of behaviour-intensity features; every user is then judged against the sample's core
points: farther than ``eps`` from all of them means outlier (what DBSCAN itself does with
a point that is no core point's neighbour). ``eps`` comes from the knee of the sorted
k-distance curve unless given.

Bots are alike: a thousand scrapers form a dense group of their own, which DBSCAN calls
a cluster, not noise. So members of a *small* DBSCAN cluster (under ``min_cluster_share``
of the sample) are flagged too: the population of a shop is a few large groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors

# The reduced feature set DBSCAN looks at.
# Intensity (bots, scrapers) and order behaviour (fraud-like baskets, impossible conversion).
# Not volume nor total spending ("events", "monetary"): a loyal customer with many events or
# a big total is not a risk, and those two columns were most of the false flags (3.5 % of
# the planted humans, against 0.9 % without them, measured on a demo shop with --seed 7).
OUTLIER_FEATURES: tuple[str, ...] = (
    "peak_events_per_minute",
    "events_per_session",
    "bot_event_share",
    "avg_order_value",
    "conversion_rate",
)
# eps is never below this percentile of the k-distance curve: the review queue is the sparse
# ~1 % tail plus small dense groups (bots), not every slightly unusual user.
EPS_FLOOR_PERCENTILE = 99.0

# Features that explain an outlier (the reason's code is the feature's name); rendered in the
# reader's language by ``recommendations.services.profiles.texts``.
REASON_FEATURES = frozenset(
    {
        "peak_events_per_minute",
        "events_per_session",
        "events",
        "bot_event_share",
        "avg_order_value",
        "monetary",
        "conversion_rate",
    }
)


@dataclass
class OutlierModel:
    """Core points (m, d) of the sample in the reduced scaled space, with their DBSCAN cluster.

    A row is an outlier when it is farther than ``eps`` from every core point, or when its
    nearest core point belongs to a small cluster (``small_clusters``).
    """

    eps: float
    min_samples: int
    core_points: np.ndarray
    eps_source: str
    core_labels: np.ndarray | None = None
    small_clusters: tuple[int, ...] = ()

    def is_outlier(self, reduced: np.ndarray) -> np.ndarray:
        if not len(reduced):
            return np.zeros(0, dtype=bool)
        if not len(self.core_points):
            return np.ones(len(reduced), dtype=bool)
        nn = NearestNeighbors(n_neighbors=1).fit(self.core_points)
        distance, nearest = nn.kneighbors(reduced)
        flagged = distance[:, 0] > self.eps
        if self.core_labels is not None and self.small_clusters:
            flagged |= np.isin(self.core_labels[nearest[:, 0]], list(self.small_clusters))
        result: np.ndarray = flagged
        return result


def knee_eps(reduced: np.ndarray, min_samples: int, floor_percentile: float = EPS_FLOOR_PERCENTILE) -> float:
    """eps at the knee of the sorted distance-to-the-``min_samples``-th-neighbour curve.

    The knee is the point of the sorted curve farthest from the straight line joining its
    ends (the "kneedle" idea): below it distances grow slowly (dense regions), above it
    they shoot up (the sparse tail DBSCAN should call noise).
    """
    n = len(reduced)
    k = min(min_samples, n - 1)
    if k < 1:
        return 1.0
    nn = NearestNeighbors(n_neighbors=k + 1).fit(reduced)
    distances, _ = nn.kneighbors(reduced)
    curve = np.sort(distances[:, k])
    x = np.linspace(0.0, 1.0, n)
    span = curve[-1] - curve[0]
    if span <= 1e-12:
        return float(curve[-1]) or 1.0
    y = (curve - curve[0]) / span
    # Distance below the chord y = x for a convex curve; the knee maximises it.
    knee = int(np.argmax(x - y))
    # Never below the floor percentile: with many identical rows (the k-distance is 0 for most
    # of them) the knee sits near 0 and every slightly different user would become noise
    # (with the 90th percentile, 7-15 % of the planted humans of the demo shop were flagged).
    return float(max(curve[knee], np.percentile(curve, floor_percentile), 1e-6))


def detect_outliers(
    reduced: np.ndarray,
    *,
    eps: float | None = None,
    min_samples: int = 10,
    sample_size: int = 10_000,
    min_cluster_share: float = 0.02,
    random_state: int = 42,
) -> tuple[OutlierModel, np.ndarray]:
    """Fit DBSCAN on a sample of ``reduced`` (n, d) and flag every row; returns (model, is_outlier).

    Clusters holding less than ``min_cluster_share`` of the sample count as outliers too.
    """
    n = len(reduced)
    if n == 0:
        return OutlierModel(
            eps=eps or 1.0,
            min_samples=min_samples,
            core_points=np.zeros((0, reduced.shape[1])),
            eps_source="none",
        ), np.zeros(0, dtype=bool)
    rng = np.random.default_rng(random_state)
    sample = reduced[rng.choice(n, size=min(n, sample_size), replace=False)] if n > sample_size else reduced
    source = "setting DBSCAN_EPS"
    if eps is None:
        eps = knee_eps(sample, min_samples)
        source = "knee of the k-distance curve"
    min_samples = max(1, min(min_samples, len(sample)))
    dbscan = DBSCAN(eps=eps, min_samples=min_samples).fit(sample)
    core = sample[dbscan.core_sample_indices_]
    core_labels = dbscan.labels_[dbscan.core_sample_indices_]
    sizes = np.bincount(dbscan.labels_[dbscan.labels_ >= 0]) if (dbscan.labels_ >= 0).any() else np.zeros(0)
    largest = int(sizes.max()) if len(sizes) else 0
    small = tuple(
        int(label)
        for label, size in enumerate(sizes)
        if size < min_cluster_share * len(sample) and size < largest
    )
    model = OutlierModel(
        eps=float(eps),
        min_samples=min_samples,
        core_points=core,
        eps_source=source,
        core_labels=core_labels,
        small_clusters=small,
    )
    return model, model.is_outlier(reduced)


def outlier_reasons(
    raw: np.ndarray, scaled: np.ndarray, columns: Sequence[str], medians: np.ndarray, *, limit: int = 2
) -> list[list[dict[str, Any]]]:
    """Explain each outlier row by its most extreme reduced features, as codes and numbers.

    ``raw``/``scaled`` are (m, d) over ``columns`` (the outliers only); ``medians`` (d,)
    the population medians in raw units. Each row gets at most ``limit`` reasons
    ``{"code": feature, "value": raw value, "median": population median}``; an empty list
    means no single feature stands out (isolated from every dense group by a combination).
    """
    reasons: list[list[dict[str, Any]]] = []
    for row_raw, row_scaled in zip(raw, scaled, strict=True):
        order = np.argsort(-np.abs(row_scaled))
        parts: list[dict[str, Any]] = []
        for j in order:
            if abs(row_scaled[j]) < 2.0 or len(parts) >= limit:
                break
            if columns[j] in REASON_FEATURES and not np.isnan(row_raw[j]):
                parts.append(
                    {"code": columns[j], "value": _figure(row_raw[j]), "median": _figure(medians[j])}
                )
        reasons.append(parts)
    return reasons


def _figure(value: float) -> float | None:
    value = float(value)
    return float(f"{value:.5g}") if np.isfinite(value) else None
