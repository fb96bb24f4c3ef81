"""Scoring recommenders on a time-based holdout: the baselines, the adapter, JSON-safe metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recommendations.core.base import BaseRecommender
from recommendations.core.baselines import CoVisitationRecommender, PopularityRecommender
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog, History
from recommendations.core.evaluation import evaluate

# The evaluation cut-off; the promotion metric names it ("NDCG@10").
EVALUATION_K = 10

RecommendFn = Callable[[list[History], int, Sequence[set[str]] | None], list[list[tuple[str, float]]]]


def baseline_recommenders(log: EventLog, config: NetworkConfig) -> dict[str, RecommendFn]:
    """The core's built-in baselines fitted on ``log``: ``{"popularity": fn, "covisitation": fn}``.

    Both rank every item of ``log`` (full ranking, as the evaluation protocol requires),
    with the same event weights and co-visitation window as the behaviour network.
    """
    weights = dict(config.event_weights)
    popularity = PopularityRecommender(event_weights=weights).fit(log)
    covisited = CoVisitationRecommender(
        window=config.covis_window,
        session_gap_hours=config.session_gap_hours,
        neighbours=config.neighbours,
        event_weights=weights,
    ).fit(log)
    return {"popularity": recommender_fn(popularity), "covisitation": recommender_fn(covisited)}


def recommender_fn(recommender: BaseRecommender) -> RecommendFn:
    """Adapt a fitted recommender to the evaluation's ``recommend_fn(histories, n, exclude)``."""

    def recommend(
        histories: list[History], n: int, exclude: Sequence[set[str]] | None
    ) -> list[list[tuple[str, float]]]:
        # the evaluation excludes exactly each shopper's history (items new to them are the targets)
        return recommender.recommend(histories, n, exclude=exclude, seen_excluded=exclude is not None)

    return recommend


def evaluate_on_holdout(fn: RecommendFn, train_log: EventLog, targets: dict[str, str]) -> dict[str, Any]:
    """Metrics at ``EVALUATION_K`` of ``fn`` on the holdout ``targets``, storable as JSON."""
    # The holdout's targets are items new to each shopper: the history is masked ("novel").
    return json_safe(evaluate(fn, train_log, targets, mask_history=True, k=EVALUATION_K))


def json_safe(value: Any) -> Any:
    """numpy scalars and arrays, tuples and non-finite floats made storable as JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
