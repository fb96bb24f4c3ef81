"""How the propensity head validates its candidates and picks one (time cut, ROC-AUC, simplest on a tie)."""

from __future__ import annotations

from typing import Any

import numpy as np


def validation_split(
    at: np.ndarray, horizon: float, y: np.ndarray, held_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str]:
    """Examples to learn on and to validate on, and how they were split.

    The newest cut validates, learned from the cuts whose label window closed before it (an
    overlapping window would show the learner part of the validation labels). Without such a
    cut, or with one class only on either side, the held-out shoppers validate.

    Parameters
    ----------
    at : ndarray of shape (n,), float64
        Time cut of each example.
    horizon : float
        Label window in seconds.
    y : ndarray of shape (n,)
        0/1 labels.
    held_out : ndarray of shape (n,), bool
        Examples of the held-out shoppers.
    """

    def both(mask: np.ndarray) -> bool:
        return bool(mask.any()) and y[mask].min() != y[mask].max()

    newest = at.max()
    valid = at == newest
    train = at + horizon <= newest
    if both(train) and both(valid):
        return train, valid, "the newest time cut"
    if both(~held_out) and both(held_out):
        return ~held_out, held_out.copy(), "held-out shoppers"
    return ~held_out, np.zeros(len(y), dtype=bool), "a random fifth of the examples"


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC-AUC measured on ``n_pos`` positives and ``n_neg`` negatives.

    Hanley & McNeil (1982), "The meaning and use of the area under a ROC curve", eq. 2.
    """
    if n_pos < 1 or n_neg < 1 or not np.isfinite(auc):
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return float(np.sqrt(max(var, 0.0)))


def choose(scores: dict[str, dict[str, Any]], standard_error: float = 0.0) -> str:
    """The simplest candidate (the first in ``scores``) within ``standard_error`` of the best ROC-AUC.

    The one-standard-error rule (Hastie, Tibshirani & Friedman, *The Elements of Statistical
    Learning*, 7.10): a more flexible candidate has to beat the simpler one by more than the
    validation set can resolve, else its lead is as likely noise as signal. ``None`` counts as 0.5.
    """
    auc = {n: 0.5 if s["valid_roc_auc"] is None else s["valid_roc_auc"] for n, s in scores.items()}
    best = max(auc.values())
    return next(n for n in scores if auc[n] >= best - standard_error)


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``p`` against 0/1 labels ``y``."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
