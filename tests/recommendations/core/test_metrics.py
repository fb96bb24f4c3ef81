"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendations.core import metrics


def test_ranking_metrics_match_hand_computed_values():
    # given: targets at rank 0, rank 2, absent, rank 12 (outside top 10)
    ranks = np.array([0, 2, -1, 12])

    # when / then
    assert metrics.hit_rate_at_k(ranks, 10) == pytest.approx(2 / 4)
    assert metrics.ndcg_at_k(ranks, 10) == pytest.approx((1.0 + 1 / math.log2(4)) / 4)
    assert metrics.mrr_at_k(ranks, 10) == pytest.approx((1.0 + 1 / 3) / 4)
    assert metrics.hit_rate_at_k(ranks, 20) == pytest.approx(3 / 4)


def test_rank_of_and_coverage():
    # given
    lists = [["a", "b", "c"], ["c", "d"], []]

    # when
    ranks = metrics.rank_of(["b", "x", "a"], lists)

    # then
    assert ranks.tolist() == [1, -1, -1]
    assert metrics.coverage(lists, n_items=8, k=2) == pytest.approx(4 / 8)  # a, b and c, d
    assert metrics.coverage(lists, n_items=8, k=1) == pytest.approx(2 / 8)


def test_roc_auc_with_ties_and_single_class():
    # given: 2 positives, 3 negatives; pairs (p, n): 0.9>all=3, 0.4 vs (0.4 tie, 0.1, 0.35) = 0.5+1+1
    y = [1, 0, 1, 0, 0]
    s = [0.9, 0.4, 0.4, 0.1, 0.35]

    # when / then
    assert metrics.roc_auc(y, s) == pytest.approx((3 + 2.5) / 6)
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_pr_auc_is_average_precision():
    # given: ranking by score: pos (p=1, r=.5), neg, pos (p=2/3, r=1)
    y = [1, 0, 1]
    s = [0.9, 0.8, 0.7]

    # when / then
    assert metrics.pr_auc(y, s) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert metrics.pr_auc([1, 1, 0], [0.5, 0.5, 0.5]) == pytest.approx(2 / 3)


def test_precision_recall_f1_at_threshold():
    # given: predictions >= 0.5 -> [1, 1, 0, 1]; truth [1, 0, 1, 1]
    # when
    p, r, f = metrics.precision_recall_f1([1, 0, 1, 1], [0.9, 0.6, 0.2, 0.5], threshold=0.5)

    # then
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f == pytest.approx(2 / 3)
    assert metrics.precision_recall_f1([0, 0], [0.1, 0.2]) == (0.0, 0.0, 0.0)
