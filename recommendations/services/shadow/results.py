"""What staff see of a shadow run: how far the candidate's lists are from the served ones, and
where the items shoppers clicked stood in each.

Clicks are the served lists' attributed clicks (``services.attributed_clicks``, checked against
the list's impression): a click on an
item of the served list is looked up in the shadow list of the same request. A clicked item
the candidate did not list counts in "clicked item in the served list" only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from recommendations.services.attributed_clicks import ShownList, clicked_items

__all__ = ["ShadowResults", "shadow_results"]

# The results read the latest scores only: enough for a stable mean, bounded for the admin page.
MAX_SCORES = 50_000


@dataclass(frozen=True)
class ShadowResults:
    """One run's figures; the means are None while nothing was scored or clicked."""

    requests: int
    failures: int
    mean_overlap: float | None
    clicks: int
    clicks_in_served: int
    clicks_in_shadow: int
    mean_rank_served: float | None
    mean_rank_shadow: float | None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _served_at(recommendation_ids: list[Any]) -> dict[str, datetime]:
    """When each list was served, from its impression."""
    from recommendations.models import Impression

    served: dict[str, datetime] = {}
    for start in range(0, len(recommendation_ids), 2_000):
        chunk = recommendation_ids[start : start + 2_000]
        for recommendation_id, created_at in Impression.objects.filter(
            recommendation_id__in=chunk
        ).values_list("recommendation_id", "created_at"):
            served[str(recommendation_id)] = created_at
    return served


def shadow_results(run: Any, *, days: int | None = None) -> ShadowResults:
    """The run's figures over its latest scores (``days``: only those of the last days)."""
    scores = run.scores.all()
    if days is not None:
        scores = scores.filter(created_at__gte=timezone.now() - timedelta(days=days))
    rows = list(
        scores.order_by("-created_at").values_list(
            "recommendation_id", "served_keys", "shadow_keys", "overlap_at_10", "user_id", "visitor_id"
        )[:MAX_SCORES]
    )
    served_at = _served_at([row[0] for row in rows])
    lists: dict[str, ShownList] = {}
    shadows: dict[str, list[str]] = {}
    for recommendation_id, served, shadow, _overlap, user_id, visitor_id in rows:
        when = served_at.get(str(recommendation_id))
        if when is None:  # no impression (not written yet, or deleted): the list attributes nothing
            continue
        lists[str(recommendation_id)] = ShownList(list(served), user_id, visitor_id, when)
        shadows[str(recommendation_id)] = list(shadow)
    clicked = clicked_items(lists)
    served_ranks: list[float] = []
    shadow_ranks: list[float] = []
    for recommendation_id, keys in clicked.items():
        served, shadow = lists[recommendation_id].item_keys, shadows[recommendation_id]
        for key in keys:
            served_ranks.append(served.index(key) + 1)
            if key in shadow:
                shadow_ranks.append(shadow.index(key) + 1)
    return ShadowResults(
        requests=len(rows),
        failures=run.failures,
        mean_overlap=_mean([row[3] for row in rows]),
        clicks=len(served_ranks),
        clicks_in_served=len(served_ranks),
        clicks_in_shadow=len(shadow_ranks),
        mean_rank_served=_mean(served_ranks),
        mean_rank_shadow=_mean(shadow_ranks),
    )
