"""Ranking and classification metrics in NumPy (no scikit-learn needed).

Ranking metrics take ``ranks``: the 0-based position of each user's target in their list, or -1 when
the target is absent (a user without a list is a miss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def _ranks(ranks: ArrayLike) -> np.ndarray:
    return np.asarray(ranks, dtype=np.int64).reshape(-1)


def hit_rate_at_k(ranks: ArrayLike, k: int = 10) -> float:
    """Share of users whose target is in the top ``k``.

    Parameters
    ----------
    ranks : array-like of shape (n_users,), int
        0-based rank of the target, -1 when absent.
    """
    r = _ranks(ranks)
    return float(np.mean((r >= 0) & (r < k))) if r.size else 0.0


def ndcg_at_k(ranks: ArrayLike, k: int = 10) -> float:
    """Mean ``1 / log2(rank + 2)`` over users with the target in the top ``k`` (0 for the others)."""
    r = _ranks(ranks)
    if not r.size:
        return 0.0
    hit = (r >= 0) & (r < k)
    gains = np.zeros(r.shape, dtype=np.float64)
    gains[hit] = 1.0 / np.log2(r[hit] + 2.0)
    return float(gains.mean())


def mrr_at_k(ranks: ArrayLike, k: int = 10) -> float:
    """Mean ``1 / (rank + 1)`` over users with the target in the top ``k`` (0 for the others)."""
    r = _ranks(ranks)
    if not r.size:
        return 0.0
    hit = (r >= 0) & (r < k)
    rr = np.zeros(r.shape, dtype=np.float64)
    rr[hit] = 1.0 / (r[hit] + 1.0)
    return float(rr.mean())


def coverage(lists: Iterable[Sequence[Any]], n_items: int, k: int = 10) -> float:
    """Share of the catalogue appearing in at least one top-``k`` list.

    Parameters
    ----------
    lists : iterable of sequences of item keys
    n_items : int
        Catalogue size (> 0).
    """
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    shown: set[Any] = set()
    for lst in lists:
        shown.update(list(lst)[:k])
    return len(shown) / n_items


def _binary(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1).astype(bool)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values, y_score has {s.size}")
    return y, s


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half), NaN when only one class is present.

    Parameters
    ----------
    y_true : array-like of shape (n,), bool or {0, 1}
    y_score : array-like of shape (n,), float
    """
    y, s = _binary(y_true, y_score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    # average ranks handle ties (Mann-Whitney U)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    start = 0
    while start < len(s):
        end = start
        while end + 1 < len(s) and sorted_s[end + 1] == sorted_s[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def pr_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision (step-wise area under precision-recall, as scikit-learn's), NaN without positives."""
    y, s = _binary(y_true, y_score)
    n_pos = int(y.sum())
    if not n_pos:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # thresholds at distinct scores
    distinct = np.flatnonzero(np.diff(s_sorted)) if len(s) > 1 else np.array([], dtype=np.int64)
    ends = np.r_[distinct, len(s) - 1]
    tp = np.cumsum(y_sorted)[ends]
    fp = (ends + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    prev_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev_recall) * precision))


def precision_recall_f1(
    y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5
) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``y_score >= threshold`` (0 where undefined)."""
    y, s = _binary(y_true, y_score)
    pred = s >= threshold
    tp = float(np.sum(pred & y))
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def rank_of(targets: Sequence[Any], lists: Sequence[Sequence[Any]]) -> np.ndarray:
    """0-based position of each target in its list, -1 when absent.

    Parameters
    ----------
    targets : sequence of item keys, length n
    lists : sequence of sequences of item keys, length n

    Returns
    -------
    ndarray of shape (n,), dtype int64
    """
    out = np.full(len(targets), -1, dtype=np.int64)
    for n, (t, lst) in enumerate(zip(targets, lists, strict=True)):
        lst = list(lst)
        if t in lst:
            out[n] = lst.index(t)
    return out
