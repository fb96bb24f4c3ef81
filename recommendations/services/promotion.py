"""Whether a newly trained version may replace the active one.

Promotion guard
    The new model, the popularity and co-visitation baselines and the active version are
    all scored on the SAME fresh time-based holdout. The new version is activated only when
    its ``PROMOTION_METRIC`` beats popularity and is not worse than the active version's by
    more than ``PROMOTION_TOLERANCE`` (relative); otherwise it stays a candidate with the
    reason recorded. Any error fails the run and leaves the active version untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommendations.conf import recommender_settings


@dataclass
class PromotionDecision:
    """Whether a new version may become active, and why (recorded on the version)."""

    promote: bool
    reason: str


def decide_promotion(
    *,
    metrics: dict[str, Any],
    baseline_metrics: dict[str, dict[str, Any]],
    active_metrics: dict[str, Any] | None,
    active_number: int | None = None,
    active_error: str = "",
    metric: str | None = None,
    tolerance: float | None = None,
) -> PromotionDecision:
    """The guard: beat popularity AND be no worse than the active version beyond the tolerance.

    ``tolerance`` is relative: with 0.02 a new NDCG@10 of 0.098 still replaces an active 0.1.
    """
    metric = metric or recommender_settings.PROMOTION_METRIC
    tolerance = recommender_settings.PROMOTION_TOLERANCE if tolerance is None else tolerance
    new = _number(metrics.get(metric))
    if new is None:
        return PromotionDecision(False, f"the new model has no {metric}")
    popular = _number((baseline_metrics.get("popularity") or {}).get(metric))
    if popular is not None and not new > popular:
        return PromotionDecision(
            False, f"{metric} {new:.4f} does not beat the popularity baseline ({popular:.4f})"
        )
    versus_popularity = (
        f"beats popularity ({popular:.4f})" if popular is not None else "has no popularity baseline"
    )
    if active_number is None:
        return PromotionDecision(True, f"{metric} {new:.4f} {versus_popularity}; no version was active")
    active = _number((active_metrics or {}).get(metric))
    if active is None:
        why = f" ({active_error})" if active_error else ""
        return PromotionDecision(
            True,
            f"{metric} {new:.4f} {versus_popularity}; the active v{active_number} could not be scored{why}",
        )
    floor = active * (1.0 - tolerance)
    if new < floor:
        return PromotionDecision(
            False,
            f"{metric} {new:.4f} is worse than the active v{active_number} ({active:.4f}) "
            f"beyond the tolerance of {tolerance:.1%} (needs at least {floor:.4f})",
        )
    return PromotionDecision(
        True,
        f"{metric} {new:.4f} {versus_popularity} and is not worse than the active v{active_number} "
        f"({active:.4f}, tolerance {tolerance:.1%})",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float | np.floating | np.integer) and math.isfinite(float(value)):
        return float(value)
    return None
