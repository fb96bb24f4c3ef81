"""K-means segments on scaled features, with k chosen by silhouette, and what distinguishes each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

from recommendations.core.profiles.features import AFFINITY_PREFIX


@dataclass
class SegmentModel:
    """Fitted segments: ``centres`` (k, n_features) in scaled space."""

    centres: np.ndarray
    algorithm: str
    silhouette_by_k: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centres.shape[0])

    def predict(self, scaled: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for each row (works for new users of an incremental rebuild)."""
        return nearest_centre(scaled, self.centres)


def nearest_centre(scaled: np.ndarray, centres: np.ndarray) -> np.ndarray:
    if not len(scaled):
        return np.zeros(0, dtype=np.int64)
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; the first term does not change the argmin.
    distances = -2.0 * scaled @ centres.T + (centres**2).sum(axis=1)
    nearest: np.ndarray = np.argmin(distances, axis=1).astype(np.int64)
    return nearest


def _kmeans(k: int, n_rows: int, minibatch_threshold: int, random_state: int) -> KMeans | MiniBatchKMeans:
    if n_rows > minibatch_threshold:
        return MiniBatchKMeans(n_clusters=k, random_state=random_state, n_init=3, batch_size=4096)
    return KMeans(n_clusters=k, random_state=random_state, n_init=4)


def fit_segments(
    scaled: np.ndarray,
    *,
    k: int | None = None,
    k_range: Sequence[int] = (3, 10),
    minibatch_threshold: int = 20_000,
    silhouette_sample: int = 4_000,
    random_state: int = 42,
) -> SegmentModel:
    """Cluster ``scaled`` (n, d) with K-means; ``k=None`` tries ``k_range`` (inclusive) by silhouette.

    The silhouette is computed on a fixed random sample of at most ``silhouette_sample``
    rows (it is quadratic in the number of rows). Fewer distinct rows than k shrink k.
    """
    n = len(scaled)
    if n == 0:
        return SegmentModel(centres=np.zeros((0, scaled.shape[1])), algorithm="none")
    distinct = len(np.unique(np.round(scaled, 6), axis=0))
    algorithm = "MiniBatchKMeans" if n > minibatch_threshold else "KMeans"
    if k is not None:
        k = max(1, min(int(k), distinct))
        model = _kmeans(k, n, minibatch_threshold, random_state).fit(scaled)
        return SegmentModel(centres=model.cluster_centers_, algorithm=algorithm)
    low, high = int(k_range[0]), int(k_range[1])
    high = min(high, distinct - 1, n - 1)
    if high < max(low, 2):
        k = max(1, min(low, distinct))
        model = _kmeans(k, n, minibatch_threshold, random_state).fit(scaled)
        return SegmentModel(centres=model.cluster_centers_, algorithm=algorithm)
    rng = np.random.default_rng(random_state)
    sample = rng.choice(n, size=min(n, silhouette_sample), replace=False)
    scores: dict[int, float] = {}
    best_centres: np.ndarray | None = None
    best_score = -np.inf
    for candidate in range(max(low, 2), high + 1):
        model = _kmeans(candidate, n, minibatch_threshold, random_state).fit(scaled)
        labels = nearest_centre(scaled[sample], model.cluster_centers_)
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(scaled[sample], labels))
        scores[candidate] = round(score, 4)
        if score > best_score:
            best_score, best_centres = score, model.cluster_centers_
    if best_centres is None:
        model = _kmeans(max(low, 2), n, minibatch_threshold, random_state).fit(scaled)
        best_centres = model.cluster_centers_
    return SegmentModel(centres=best_centres, algorithm=algorithm, silhouette_by_k=scores)


# The trait a distinguishing feature gives a segment: (code when high, code when low); "" = none.
# Codes, not words: ``recommendations.services.profiles.texts`` renders them in the reader's language.
TRAITS: dict[str, tuple[str, str]] = {
    "frequency": ("frequent", "occasional"),
    "monetary": ("high_spenders", "low_spenders"),
    "avg_order_value": ("big_baskets", "small_baskets"),
    "recency_days": ("lapsed", "recently_active"),
    "peak_events_per_minute": ("fast_clickers", ""),
    "events_per_session": ("long_sessions", "short_visits"),
    "conversion_rate": ("converting", "non_converting"),
    "cart_abandonment_rate": ("cart_abandoners", ""),
    "views": ("heavy_browsers", "light_browsers"),
    "price_level": ("premium", "bargain"),
    "propensity": ("likely_buyers", "unlikely_buyers"),
    "tenure_days": ("long_standing", "new"),
}
# Traits that name the people (the head of a segment's name); the others qualify them.
NOUN_TRAITS = frozenset(
    {
        "high_spenders",
        "low_spenders",
        "cart_abandoners",
        "heavy_browsers",
        "light_browsers",
        "fast_clickers",
        "likely_buyers",
        "unlikely_buyers",
    }
)


def describe_segments(
    centres_scaled: np.ndarray,
    columns: Sequence[str],
    segment_means: np.ndarray,
    overall_means: np.ndarray,
    *,
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """What distinguishes each segment's centre, as codes and numbers (JSON-ready), one dict each.

    ``centres_scaled`` (k, d) are in scaled units (about standard deviations), so a
    component above ``threshold`` in absolute value is distinctive. ``segment_means`` and
    ``overall_means`` (raw units) make the description concrete. Each dict holds
    ``qualities`` and ``nouns`` (trait codes of :data:`TRAITS`, strongest first), ``category``
    (the category the segment is drawn to, or ``None``), ``details`` (``{"feature", "value",
    "overall"}``; a category's share has ``"category"`` instead of ``"feature"``) and
    ``ordinal`` (1, or 2, 3... for a later segment whose traits repeat an earlier one's).
    """
    columns = list(columns)
    results: list[dict[str, Any]] = []
    affinity_idx = [j for j, c in enumerate(columns) if c.startswith(AFFINITY_PREFIX)]
    for s, centre in enumerate(centres_scaled):
        ranked = sorted(
            (j for j, c in enumerate(columns) if c in TRAITS and abs(centre[j]) >= threshold),
            key=lambda j: -abs(centre[j]),
        )
        qualities: list[str] = []
        nouns: list[str] = []
        details: list[dict[str, Any]] = []
        for j in ranked[:4]:
            trait = TRAITS[columns[j]][0 if centre[j] > 0 else 1]
            if not trait:
                continue
            (nouns if trait in NOUN_TRAITS else qualities).append(trait)
            details.append(
                {
                    "feature": columns[j],
                    "value": _number(segment_means[s, j]),
                    "overall": _number(overall_means[j]),
                }
            )
        category: str | None = None
        if affinity_idx:
            best = max(affinity_idx, key=lambda j: centre[j])
            if centre[best] >= threshold:
                category = columns[best][len(AFFINITY_PREFIX) :]
                details.append(
                    {
                        "category": category,
                        "value": _number(segment_means[s, best]),
                        "overall": _number(overall_means[best]),
                    }
                )
        results.append(
            {"qualities": qualities[:2], "nouns": nouns[:2], "category": category, "details": details}
        )
    seen: dict[tuple[Any, ...], int] = {}
    for result in results:
        key = (tuple(result["qualities"]), tuple(result["nouns"]), result["category"])
        seen[key] = seen.get(key, 0) + 1
        result["ordinal"] = seen[key]
    return results


def _number(value: float) -> float | None:
    """A JSON-safe figure (NaN/inf -> None), rounded to 5 significant digits."""
    value = float(value)
    return float(f"{value:.5g}") if np.isfinite(value) else None


@dataclass
class SegmentSpace:
    """The space segments are found in: what a shopper buys into, not how much they do.

    Columns: the share of the user's weighted activity in *every* category (times
    ``affinity_weight``), then ``log(price_level)`` (standardised, times ``price_weight``).

    Why not every scaled feature (the first version did that: ARI 0.21 against the planted
    shopper types): volume, recency and RFM columns vary continuously inside every type
    (activity is log-normal per shopper, churn cuts histories at random), so K-means split
    people by how much they did, not by what kind of shopper they are. Category shares sum
    to one per user, so one type's categories dominate its rows whatever its volume, and
    the price level separates the bargain hunters (cheap items in every category) from
    the rest. The behaviour embedding is left out too: it mixes item identity and volume
    and only blurred the segments in the measurement (it stays a stored/displayed feature).
    Chosen on a demo shop generated with ``--seed 7`` (the bench evaluates ``--seed 42``).
    """

    categories: list[str]
    affinity_weight: float = 3.0
    price_weight: float = 1.0
    price_center: float = 0.0
    price_scale: float = 1.0

    def fit(self, shares: np.ndarray, price_level: np.ndarray) -> SegmentSpace:
        """Learn the price centre/scale (median, IQR of log price level among known values)."""
        del shares  # shares are already comparable (fractions of one)
        logs = _log_price(price_level)
        known = logs[np.isfinite(logs)]
        if len(known):
            q25, q50, q75 = np.percentile(known, [25, 50, 75])
            self.price_center = float(q50)
            self.price_scale = float(q75 - q25) if q75 - q25 > 1e-9 else float(known.std() or 1.0)
        return self

    def transform(self, shares: np.ndarray, categories: Sequence[str], price_level: np.ndarray) -> np.ndarray:
        """(n, len(self.categories) + 1) rows; ``shares`` columns follow ``categories`` (matched by name)."""
        n = len(price_level)
        aligned = np.zeros((n, len(self.categories)))
        position = {name: j for j, name in enumerate(categories)}
        for j, name in enumerate(self.categories):
            if name in position and shares is not None and shares.shape[1]:
                aligned[:, j] = shares[:, position[name]]
        logs = _log_price(price_level)
        price = np.where(np.isfinite(logs), (logs - self.price_center) / self.price_scale, 0.0)
        return np.hstack([aligned * self.affinity_weight, (price * self.price_weight).reshape(-1, 1)])

    def to_dict(self) -> dict[str, object]:
        return {
            "categories": list(self.categories),
            "affinity_weight": self.affinity_weight,
            "price_weight": self.price_weight,
            "price_center": self.price_center,
            "price_scale": self.price_scale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentSpace:
        return cls(
            categories=list(data["categories"]),
            affinity_weight=float(data["affinity_weight"]),
            price_weight=float(data["price_weight"]),
            price_center=float(data["price_center"]),
            price_scale=float(data["price_scale"]),
        )


def _log_price(price_level: np.ndarray) -> np.ndarray:
    values = np.asarray(price_level, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan)
