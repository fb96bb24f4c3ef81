"""The one abstract base every recommender algorithm implements (scikit-learn conventions)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from recommendations.core.dataset import EventLog, History, ItemIndex, Sequences
from recommendations.core.progress import Progress
from recommendations.core.sequences import histories_to_sequences

Recommendations = list[list[tuple[str, float]]]


class NotFittedError(ValueError, AttributeError):
    """Raised when a recommender is used before ``fit``."""


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` columns per row, best first; ``-inf`` entries are never returned.

    Parameters
    ----------
    scores : ndarray of shape (m, n_items), float
    n : int

    Returns
    -------
    idx : ndarray of shape (m, min(n, n_items)), int64
    vals : ndarray of the same shape, float (``-inf`` marks padding past the finite entries)
    """
    m, n_items = scores.shape
    k = min(n, n_items)
    if k <= 0:
        return np.zeros((m, 0), dtype=np.int64), np.zeros((m, 0))
    idx = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items), (m, 1))
    )
    part = np.take_along_axis(scores, idx, 1)
    keep_lowest_tied_columns(scores, idx, part)
    return order_best_first(idx, part)


def order_best_first(idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``(idx, vals)`` ordered by score descending, then column ascending."""
    order = np.lexsort((idx, -vals), axis=1)
    return np.take_along_axis(idx, order, 1), np.take_along_axis(vals, order, 1)


def keep_lowest_tied_columns(scores: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
    """Make each row's selected ``k`` columns the best ones with ties going to the lower column.

    A partial selection (``argpartition``, ``torch.topk``) keeps *some* of the columns whose
    score equals the row's k-th best; which ones depends on the array's length and layout, so
    the same history could get different lists in a batch and alone. Rows with more columns
    at or above their k-th best score than ``k`` get the lowest such columns instead (a
    stable sort of those columns only); ``idx`` and ``vals`` (shape (rows, k)) change in place.
    Rows whose k-th best is ``-inf`` are left alone: every finite score is already selected
    and the rest is padding.
    """
    k = idx.shape[1]
    if not k or k >= scores.shape[1]:
        return
    kth = vals.min(axis=1)
    tied = np.flatnonzero((np.count_nonzero(scores >= kth[:, None], axis=1) > k) & np.isfinite(kth))
    for row in tied.tolist():
        columns = np.flatnonzero(scores[row] >= kth[row])  # ascending
        best = columns[np.argsort(-scores[row, columns], kind="stable")[:k]]
        idx[row] = best
        vals[row] = scores[row, best]


class BaseRecommender(ABC):
    """Common interface: ``fit(log) -> self``, ``recommend(histories, n)``, ``similar_items(item, n)``.

    ``__init__`` only stores hyperparameters; learned attributes end in ``_`` and exist after ``fit``.
    Subclasses implement :meth:`fit`, :meth:`similar_items` and :meth:`_score`; ``recommend`` masks
    exclusions and takes the top ``n``.
    """

    #: scores for this many histories at a time (bounds the dense score matrix)
    chunk_size = 512

    @abstractmethod
    def fit(self, log: EventLog, *, progress: Progress | None = None) -> BaseRecommender:
        """Learn from ``log``; returns ``self``."""

    @abstractmethod
    def similar_items(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Items related to ``item``, best first; an unknown item gives ``[]``."""

    @abstractmethod
    def _score(self, seqs: Sequences, now: float | None) -> np.ndarray:
        """Scores of shape (len(seqs), n_items), float; column ``j`` is ``item_ids_[j]``."""

    def _event_weights(self) -> dict[str, float]:
        return getattr(self, "event_weights_", None) or {}

    def _max_length(self) -> int | None:
        return None

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")

    def recommend(
        self,
        histories: Sequence[History],
        n: int = 10,
        *,
        exclude: Sequence[Collection[str]] | None = None,
        now: float | None = None,
        seen_excluded: bool = False,
    ) -> Recommendations:
        """Top ``n`` items per history.

        Parameters
        ----------
        histories : sequence of History
            Per shopper ``(item_key, event_type, unix_ts)``, oldest first; unknown items are ignored.
        n : int
        exclude : sequence of collections of item keys, optional
            One per history: never recommended to that shopper.
        now : float, optional
            Unix time of the request (trending popularity for empty histories).
        seen_excluded : bool
            ``exclude`` holds each shopper's whole history (a model with a blend for items new to
            the shopper ranks with it; others ignore the flag).

        Returns
        -------
        list of lists of (item_key, score)
            One list per history, best first, at most ``n`` long.
        """
        self._check_fitted()
        if n < 0:
            raise ValueError("n must be >= 0")
        histories = list(histories)
        if exclude is not None and len(exclude) != len(histories):
            raise ValueError(f"exclude has {len(exclude)} entries for {len(histories)} histories")
        index: ItemIndex = self.index_  # type: ignore[attr-defined]
        out: Recommendations = []
        for start in range(0, len(histories), self.chunk_size):
            chunk = histories[start : start + self.chunk_size]
            seqs = histories_to_sequences(chunk, index, self._event_weights(), self._max_length())
            rows: list[int] = []
            cols: list[int] = []
            for r, ex in enumerate(exclude[start : start + self.chunk_size] if exclude is not None else ()):
                for key in ex:
                    if key in index.index:
                        rows.append(r)
                        cols.append(index.index[key] - 1)
            cells = (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))
            idx, vals = self._rank(seqs, n, cells, now, seen_excluded)
            keys = self.item_ids_  # type: ignore[attr-defined]
            for r in range(len(chunk)):
                finite = np.isfinite(vals[r])
                out.append(
                    list(zip([keys[j] for j in idx[r][finite]], vals[r][finite].tolist(), strict=True))
                )
        return out

    def _rank(
        self,
        seqs: Sequences,
        n: int,
        exclude: tuple[np.ndarray, np.ndarray],
        now: float | None,
        seen_excluded: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` columns per sequence with the ``(rows, columns)`` cells in ``exclude`` left out.

        Subclasses with a faster scorer override this (``recommend`` stays the same).
        """
        scores = np.asarray(self._score(seqs, now), dtype=np.float64)
        scores[exclude[0], exclude[1]] = -np.inf
        return top_n(scores, n)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters given to ``__init__``."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}
