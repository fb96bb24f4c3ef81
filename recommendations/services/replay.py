"""Off-policy replay: a model version's click rate estimated from logged, explored impressions.

Reads the impressions that carry exploration propensities (``Impression.propensities``, written
while ``EXPLORATION_SHARE`` is above 0), the clicks attributed to them
(``services.attributed_clicks``), and each shopper's events before each list was served. The
candidate version re-ranks the explored positions of each logged list (the leading positions whose
logged probability is below 1) with its own scores for that shopper at that moment; the
positions after them are kept. ``core.off_policy.replay_estimate`` turns the matches into IPS and
SNIPS estimates of the candidate's clicks per list, with intervals (docs/experiments.md).

What it judges is therefore the candidate as a **re-ranker of the lists that were served**: it
says nothing about items the logging policy never showed (no logged probability covers them).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from behavior.items import item_key_field
from recommendations.conf import recommender_settings
from recommendations.core.off_policy import IntervalKind, ReplayEstimate, replay_estimate
from recommendations.services.attributed_clicks import ShownList, clicked_items

__all__ = ["ReplayReport", "UnknownVersion", "replay_version"]

# How deep the candidate ranks the catalogue per shopper: a logged item below it ranks last.
SCORING_DEPTH = 1_000
SCORING_BATCH = 256


class UnknownVersion(LookupError):
    """No model version of that number, or its artefact cannot be loaded."""


@dataclass(frozen=True)
class ReplayReport:
    """The estimate, beside what the logging policy itself got on the same lists."""

    version_number: int
    estimate: ReplayEstimate
    logged_clicks_per_list: float
    positions: int


@dataclass
class _Logged:
    recommendation_id: str
    who: tuple[Any, str]
    keys: list[str]
    propensities: list[float]
    served_at: Any


def _load_version(number: int) -> Any:
    from recommendations.models import ModelVersion
    from recommendations.services.registry import get_version_model

    version = ModelVersion.objects.filter(number=number).first()
    if version is None:
        raise UnknownVersion(f"no model version {number}")
    loaded = get_version_model(version.pk)
    if loaded is None:
        raise UnknownVersion(f"model version {number} cannot be loaded (artefact missing or refused)")
    return loaded


def _logged_lists(placement: str | None, days: int, limit: int) -> list[_Logged]:
    from recommendations.models import Impression

    queryset = Impression.objects.filter(
        propensities__isnull=False, created_at__gte=timezone.now() - timedelta(days=days)
    )
    if placement:
        queryset = queryset.filter(placement=placement)
    rows = queryset.order_by("-created_at").values_list(
        "recommendation_id", "user_id", "visitor_id", "item_keys", "propensities", "created_at"
    )[:limit]
    return [
        _Logged(
            str(rid), (user_id, "" if user_id is not None else visitor_id), list(keys), list(props), served
        )
        for rid, user_id, visitor_id, keys, props, served in rows
        if keys and props and len(keys) == len(props)
    ]


def _histories(lists: list[_Logged]) -> dict[str, list[tuple[str, str, float]]]:
    """Each list's shopper's latest events before it was served (oldest first)."""
    from behavior.models import Event

    by_shopper: dict[tuple[Any, str], list[_Logged]] = defaultdict(list)
    for logged in lists:
        by_shopper[logged.who].append(logged)
    key_path = f"item__{item_key_field()}"
    depth = recommender_settings.SESSION_EVENTS
    histories: dict[str, list[tuple[str, str, float]]] = {}
    for (user_id, visitor_id), shown in by_shopper.items():
        events = Event.objects.filter(is_bot=False, item__isnull=False)
        if user_id is not None:
            events = events.filter(user_id=user_id)
        else:
            events = events.filter(user__isnull=True, visitor_id=visitor_id)
        latest = max(entry.served_at for entry in shown)
        rows = [
            (str(key), event_type, when.timestamp())
            for key, event_type, when in events.filter(occurred_at__lt=latest)
            .order_by("occurred_at")
            .values_list(key_path, "event_type", "occurred_at")
        ]
        stamps = [row[2] for row in rows]
        for entry in shown:
            end = bisect.bisect_left(stamps, entry.served_at.timestamp())
            histories[entry.recommendation_id] = rows[max(0, end - depth) : end]
    return histories


def _candidate_orders(loaded: Any, lists: list[_Logged], histories: dict[str, list]) -> list[list[str]]:
    """The candidate's order of each list: its explored positions re-ranked, the rest kept."""
    orders: list[list[str]] = []
    for start in range(0, len(lists), SCORING_BATCH):
        batch = lists[start : start + SCORING_BATCH]
        ranked = loaded.recommender.recommend(
            [histories[entry.recommendation_id] for entry in batch],
            SCORING_DEPTH,
            now=max(entry.served_at.timestamp() for entry in batch),
        )
        for entry, scored in zip(batch, ranked, strict=True):
            rank = {key: position for position, (key, _score) in enumerate(scored)}
            explored = sum(1 for probability in entry.propensities if probability < 1.0)
            head = sorted(entry.keys[:explored], key=lambda key: rank.get(key, SCORING_DEPTH))
            orders.append(head + entry.keys[explored:])
    return orders


def replay_version(
    number: int,
    *,
    placement: str | None = None,
    days: int = 30,
    limit: int = 100_000,
    interval: IntervalKind = "normal",
    alpha: float = 0.05,
) -> ReplayReport:
    """Estimate version ``number``'s clicks per list on the explored impressions of the last ``days``."""
    loaded = _load_version(number)
    lists = _logged_lists(placement, days, limit)
    width = max((len(entry.keys) for entry in lists), default=0)
    clicked = clicked_items(
        {
            entry.recommendation_id: ShownList(entry.keys, entry.who[0], entry.who[1], entry.served_at)
            for entry in lists
        }
    )
    orders = _candidate_orders(loaded, lists, _histories(lists)) if lists else []
    index: dict[str, int] = {}
    logged = np.full((len(lists), width), -1, dtype=np.int64)
    candidate = np.full((len(lists), width), -1, dtype=np.int64)
    clicks = np.zeros((len(lists), width))
    propensities = np.ones((len(lists), width))
    for row, (entry, order) in enumerate(zip(lists, orders, strict=True)):
        hits = clicked.get(entry.recommendation_id, set())
        for position, key in enumerate(entry.keys):
            logged[row, position] = index.setdefault(key, len(index))
            clicks[row, position] = key in hits
            propensities[row, position] = entry.propensities[position]
        for position, key in enumerate(order):
            candidate[row, position] = index.setdefault(key, len(index))
    estimate = replay_estimate(logged, clicks, propensities, candidate, alpha=alpha, interval=interval)
    return ReplayReport(
        version_number=loaded.version_number,
        estimate=estimate,
        logged_clicks_per_list=float(clicks.sum(axis=1).mean()) if lists else float("nan"),
        positions=width,
    )
