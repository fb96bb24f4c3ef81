"""Simple recommenders on the common base: popularity / trending and co-visitation from the history."""

from __future__ import annotations

import numpy as np

from recommendations.core.base import BaseRecommender
from recommendations.core.candidates import covisitation_matrix, history_weights
from recommendations.core.config import DEFAULT_EVENT_WEIGHTS
from recommendations.core.dataset import EVENT_TYPES, EventLog, ItemIndex, Sequences
from recommendations.core.progress import Progress
from recommendations.core.sequences import build_sequences, clean_log

DAY = 86400.0


class PopularityRecommender(BaseRecommender):
    """Most popular items (event-weighted); with ``half_life_days`` and a request time, trending.

    Parameters
    ----------
    half_life_days : float, optional
        Exponential time decay of event weight when ``recommend`` gets ``now``.
    event_weights : dict, optional
    """

    def __init__(
        self, half_life_days: float | None = None, event_weights: dict[str, float] | None = None
    ) -> None:
        self.half_life_days = half_life_days
        self.event_weights = event_weights

    def fit(self, log: EventLog, *, progress: Progress | None = None) -> PopularityRecommender:
        w = dict(self.event_weights or DEFAULT_EVENT_WEIGHTS)
        clean = clean_log(log, w)
        self.event_weights_ = w
        self.index_ = ItemIndex(sorted(set(clean.items)))
        self.item_ids_ = list(self.index_.item_ids)
        cols = np.array([self.index_.index[i] - 1 for i in clean.items], dtype=np.int64)
        self.event_cols_ = cols
        self.event_weight_values_ = np.array([w[t] for t in clean.event_types], dtype=np.float64)
        self.event_times_ = clean.timestamps.copy()
        self.popularity_ = np.bincount(cols, weights=self.event_weight_values_, minlength=len(self.item_ids_))
        if progress:
            progress("fit", 1.0)
        return self

    def _vector(self, now: float | None) -> np.ndarray:
        if now is None or not self.half_life_days:
            return self.popularity_
        keep = self.event_times_ <= now
        decay = np.power(0.5, (now - self.event_times_[keep]) / (self.half_life_days * DAY))
        return np.bincount(
            self.event_cols_[keep],
            weights=self.event_weight_values_[keep] * decay,
            minlength=len(self.item_ids_),
        )

    def _score(self, seqs: Sequences, now: float | None) -> np.ndarray:
        return np.tile(self._vector(now), (len(seqs), 1))

    def similar_items(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Popularity has no item relations: the most popular other items."""
        self._check_fitted()
        if item not in self.index_.index:
            return []
        scores = self.popularity_.astype(np.float64).copy()
        scores[self.index_.index[item] - 1] = -np.inf
        order = np.lexsort((np.arange(len(scores)), -scores))[:n]
        return [(self.item_ids_[j], float(scores[j])) for j in order if np.isfinite(scores[j])]


class CoVisitationRecommender(BaseRecommender):
    """Item-to-item co-visitation summed over the shopper's recent items (recency-decayed).

    Parameters
    ----------
    window : int
        Steps apart within a session that count as co-visited.
    session_gap_hours : float
    neighbours : int
    decay : float
        Weight ``decay ** age`` of the shopper's ``age``-th newest item.
    event_weights : dict, optional
    """

    def __init__(
        self,
        window: int = 5,
        session_gap_hours: float = 24.0,
        neighbours: int = 100,
        decay: float = 0.8,
        event_weights: dict[str, float] | None = None,
    ) -> None:
        self.window = window
        self.session_gap_hours = session_gap_hours
        self.neighbours = neighbours
        self.decay = decay
        self.event_weights = event_weights

    def fit(self, log: EventLog, *, progress: Progress | None = None) -> CoVisitationRecommender:
        w = dict(self.event_weights or DEFAULT_EVENT_WEIGHTS)
        clean = clean_log(log, w)
        self.event_weights_ = w
        self.index_ = ItemIndex(sorted(set(clean.items)))
        self.item_ids_ = list(self.index_.item_ids)
        seqs = build_sequences(clean, self.index_, w)
        types = {i + 1: w.get(t, 0.0) for i, t in enumerate(EVENT_TYPES)}
        self.similarity_ = covisitation_matrix(
            seqs,
            len(self.index_),
            window=self.window,
            session_gap_hours=self.session_gap_hours,
            neighbours=self.neighbours,
            types=types,
        )
        counts = np.bincount(
            np.concatenate(seqs.items) - 1 if seqs.n_events else np.zeros(0, dtype=np.int64),
            minlength=len(self.item_ids_),
        ).astype(np.float64)
        self.popularity_ = counts
        if progress:
            progress("fit", 1.0)
        return self

    def _score(self, seqs: Sequences, now: float | None) -> np.ndarray:
        hist = history_weights(seqs, len(self.item_ids_), last=20, decay=self.decay)
        scores = np.asarray((hist @ self.similarity_).todense(), dtype=np.float64)
        # popularity only breaks ties (and serves empty histories)
        tie_break: np.ndarray = self.popularity_[None, :] / (self.popularity_.max(initial=0.0) + 1.0) * 1e-6
        ranked: np.ndarray = scores + tie_break
        return ranked

    def similar_items(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Most co-visited items; unknown item -> []."""
        self._check_fitted()
        j = self.index_.index.get(item)
        if j is None:
            return []
        row = self.similarity_.getrow(j - 1)
        order = np.lexsort((row.indices, -row.data))[:n]
        return [(self.item_ids_[row.indices[o]], float(row.data[o])) for o in order if row.data[o] > 0]
