"""An experiment's results: per arm, its shoppers and what they did, with always-valid intervals.

The unit of analysis is the assigned shopper. For every arm: shoppers, impressions, clicks and
click-through (clicks per impression, descriptive), then four per-shopper metrics, each with
its always-valid interval and, for every arm but the first (the baseline), the always-valid
interval and p-value of its difference from the baseline (``core.sequential``: the mixture
SPRT, looked at once per day, so reading the page every day keeps its level).

The results are plain JSON-able data: the admin draws them, and an ended experiment keeps them
(``lifecycle.finalize``) so retention may then delete its impressions.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.core import sequential
from recommendations.services.experiments.attribution import (
    ArmActivity,
    experiment_days,
    gather,
    revenue_by_day,
)

__all__ = ["METRICS", "compute_results", "results_of"]

# Per-shopper metrics: name -> the outcome whose first occurrence makes a shopper count (None:
# revenue, a sum per shopper).
METRICS: dict[str, str | None] = {
    "click_rate": "click",
    "add_to_cart_rate": "add_to_cart",
    "conversion": "purchase",
    "revenue_per_shopper": None,
}


def _finite(value: float) -> float | None:
    """JSON keeps no infinity: an unbounded end is None."""
    return round(value, 8) if math.isfinite(value) else None


def _interval(interval: sequential.Interval | None, alpha: float) -> dict[str, Any] | None:
    if interval is None:
        return None
    return {
        "estimate": _finite(interval.estimate),
        "lower": _finite(interval.lower),
        "upper": _finite(interval.upper),
        "p_value": round(interval.p_value, 8),
        "significant": interval.significant(alpha),
    }


def daily_summaries(activity: ArmActivity) -> dict[str, list[sequential.Summary]]:
    """Each metric's cumulative per-shopper summary at the end of every day."""
    days = len(activity.assigned)
    shoppers = [sum(activity.assigned[: day + 1]) for day in range(days)]
    summaries: dict[str, list[sequential.Summary]] = {}
    for name, outcome in METRICS.items():
        if outcome is None:
            sums = revenue_by_day(activity.revenue, days)
            summaries[name] = [
                sequential.Summary.of(n, s, q) for n, (s, q) in zip(shoppers, sums, strict=True)
            ]
            continue
        firsts = sorted(activity.first[outcome].values())
        counts = [sum(1 for first in firsts if first <= day) for day in range(days)]
        summaries[name] = [sequential.Summary.of(n, k, k) for n, k in zip(shoppers, counts, strict=True)]
    return summaries


def compare_daily(
    treatment: list[sequential.Summary], baseline: list[sequential.Summary], *, alpha: float
) -> sequential.Interval | None:
    """The running (intersected) always-valid interval of the difference over the daily looks."""
    effect = recommender_settings.EXPERIMENT_MIXTURE_EFFECT
    looks = [
        sequential.compare(t, b, alpha=alpha, effect=effect) for t, b in zip(treatment, baseline, strict=True)
    ]
    return sequential.running(looks)


def compute_results(experiment: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """The experiment's results now (see the module's docstring), as JSON-able data."""
    alpha = recommender_settings.EXPERIMENT_ALPHA
    effect = recommender_settings.EXPERIMENT_MIXTURE_EFFECT
    days = experiment_days(experiment, now)
    activity = gather(experiment, days)
    arms = list(experiment.arms.select_related("model_version").order_by("pk"))
    summaries = {arm.pk: daily_summaries(activity[arm.pk]) for arm in arms}
    baseline = arms[0].pk if arms else None
    rows = []
    for arm in arms:
        record = activity[arm.pk]
        impressions = sum(record.impressions)
        metrics = {}
        for name in METRICS:
            series = summaries[arm.pk][name]
            last = series[-1] if series else sequential.Summary(0, 0.0, 0.0)
            versus = None
            if baseline is not None and arm.pk != baseline and series:
                versus = compare_daily(series, summaries[baseline][name], alpha=alpha)
            metrics[name] = {
                "mean": round(last.mean, 8),
                "interval": _interval(sequential.mean_interval(last, alpha=alpha, effect=effect), alpha),
                "vs_baseline": _interval(versus, alpha),
                "series": [round(summary.mean, 8) for summary in series],
            }
        rows.append(
            {
                "id": arm.pk,
                "name": arm.name,
                "strategy": arm.strategy,
                "model_version_id": arm.model_version_id,
                "model_version": arm.model_version.number if arm.model_version is not None else None,
                "version_missing": arm.strategy == "model" and arm.model_version_id is None,
                "baseline": arm.pk == baseline,
                "stopped_at": arm.stopped_at.isoformat() if arm.stopped_at else None,
                "stopped_reason": arm.stopped_reason,
                "shoppers": sum(record.assigned),
                "impressions": impressions,
                "clicks": record.clicks,
                "ctr": round(record.clicks / impressions, 8) if impressions else None,
                "shoppers_series": [sum(record.assigned[: day + 1]) for day in range(len(days))],
                "metrics": metrics,
            }
        )
    return {
        "computed_at": (now or timezone.now()).isoformat(),
        "alpha": alpha,
        "mixture_effect": effect,
        "days": [day.isoformat() for day in days],
        "arms": rows,
    }


def results_of(experiment: Any) -> dict[str, Any]:
    """The kept final results of an ended experiment, else the results computed now."""
    if experiment.final_results:
        return dict(experiment.final_results)
    return compute_results(experiment)
