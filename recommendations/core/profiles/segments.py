"""K-means segments on scaled features, with k chosen by silhouette and generated names."""

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


# How a distinguishing feature reads in a segment name: (when high, when low).
_PHRASES: dict[str, tuple[str, str]] = {
    "frequency": ("frequent", "occasional"),
    "monetary": ("high spenders", "low spenders"),
    "avg_order_value": ("big baskets", "small baskets"),
    "recency_days": ("lapsed", "recently active"),
    "peak_events_per_minute": ("bot-like fast clickers", ""),
    "events_per_session": ("long sessions", "short visits"),
    "conversion_rate": ("converting", "non-converting"),
    "cart_abandonment_rate": ("cart abandoners", ""),
    "views": ("heavy browsers", "light browsers"),
    "price_level": ("premium", "bargain"),
    "propensity": ("likely buyers", "unlikely buyers"),
    "tenure_days": ("long-standing", "new"),
}
# Features whose phrase is a noun (the head of the name); the others are adjectives.
_NOUNS = frozenset(
    {
        "high spenders",
        "low spenders",
        "cart abandoners",
        "heavy browsers",
        "light browsers",
        "bot-like fast clickers",
        "likely buyers",
        "unlikely buyers",
    }
)


def describe_segments(
    centres_scaled: np.ndarray,
    columns: Sequence[str],
    segment_means: np.ndarray,
    overall_means: np.ndarray,
    *,
    threshold: float = 0.5,
) -> list[tuple[str, str]]:
    """Name and describe each segment from what distinguishes its centre.

    ``centres_scaled`` (k, d) are in scaled units (about standard deviations), so a
    component above ``threshold`` in absolute value is distinctive. ``segment_means`` and
    ``overall_means`` (raw units) make the description concrete. Returns ``(name, description)``
    per segment; names are made unique.
    """
    columns = list(columns)
    results: list[tuple[str, str]] = []
    affinity_idx = [j for j, c in enumerate(columns) if c.startswith(AFFINITY_PREFIX)]
    for s, centre in enumerate(centres_scaled):
        ranked = sorted(
            (j for j, c in enumerate(columns) if c in _PHRASES and abs(centre[j]) >= threshold),
            key=lambda j: -abs(centre[j]),
        )
        adjectives: list[str] = []
        nouns: list[str] = []
        details: list[str] = []
        for j in ranked[:4]:
            phrase = _PHRASES[columns[j]][0 if centre[j] > 0 else 1]
            if not phrase:
                continue
            (nouns if phrase in _NOUNS else adjectives).append(phrase)
            details.append(_detail(columns[j], segment_means[s, j], overall_means[j]))
        category = ""
        if affinity_idx:
            best = max(affinity_idx, key=lambda j: centre[j])
            if centre[best] >= threshold:
                category = columns[best][len(AFFINITY_PREFIX) :]
                details.append(
                    f"{category}: {segment_means[s, best]:.0%} of activity "
                    f"(overall {overall_means[best]:.0%})"
                )
        head = nouns[0] if nouns else "shoppers"
        words = [*adjectives[:2], head]
        if len(nouns) > 1:
            words += ["and", nouns[1]]
        name = " ".join(words)
        if category:
            name = f"{name}, {category}"
        if not ranked and not category:
            name = "typical shoppers"
        description = (
            "Compared with all users: " + "; ".join(details) + "."
            if details
            else "Close to the average on every feature."
        )
        results.append((name[:1].upper() + name[1:], description))
    seen: dict[str, int] = {}
    unique: list[tuple[str, str]] = []
    for name, description in results:
        seen[name] = seen.get(name, 0) + 1
        unique.append((name if seen[name] == 1 else f"{name} ({seen[name]})", description))
    return unique


def _detail(column: str, value: float, overall: float) -> str:
    label = column.replace("_", " ")
    if column.endswith("_rate"):
        return f"{label} {value:.0%} (overall {overall:.0%})"
    if overall and abs(overall) > 1e-9:
        return f"{label} {value:.3g} ({value / overall:.1f}x the average {overall:.3g})"
    return f"{label} {value:.3g} (overall {overall:.3g})"


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
