"""K-means segments on scaled features, with k chosen by silhouette and generated names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    return np.argmin(distances, axis=1).astype(np.int64)


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
