"""Popular and trending items (overall and per category), precomputed and cached.

The refresh task writes ``ItemPopularity``; pages read one cached snapshot. When the
table is empty (the task never ran) the snapshot is computed from recent events once and
cached, so an empty or fresh database still serves popular items. "Recent" is counted back
from the data clock (the newest stored event), not the wall clock.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from behavior.items import item_key_field
from recommendations.conf import recommender_settings
from recommendations.data.clock import data_now

CACHE_KEY = "rec:popularity:v1"
STAMP_KEY = "rec:popularity:stamp"
# Items kept in the overall ranking and in each category's ranking of the snapshot.
OVERALL_SIZE = 500
CATEGORY_SIZE = 100
_local: dict[str, PopularitySnapshot] = {}
_lock = threading.Lock()


@dataclass
class PopularitySnapshot:
    """Rankings by time-decayed (trending) score; labels are category display names."""

    overall: list[tuple[str, float]] = field(default_factory=list)
    by_category: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    item_category: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "overall": self.overall,
            "by_category": self.by_category,
            "labels": self.labels,
            "item_category": self.item_category,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PopularitySnapshot:
        return cls(
            overall=[(k, float(s)) for k, s in data.get("overall", [])],
            by_category={
                c: [(k, float(s)) for k, s in rows] for c, rows in data.get("by_category", {}).items()
            },
            labels=dict(data.get("labels", {})),
            item_category=dict(data.get("item_category", {})),
        )


def score_events(rows, *, now: float, half_life_days: float, weights: dict[str, float]):
    """Weighted counts and time-decayed (trending) scores per item from (key, type, datetime) rows."""
    popularity: dict[str, float] = {}
    trending: dict[str, float] = {}
    decay = math.log(2) / max(half_life_days * 86400.0, 1.0)
    for key, event_type, occurred_at in rows:
        weight = float(weights.get(event_type, 0.0))
        if weight <= 0 or key is None:
            continue
        key = str(key)
        age = max(now - occurred_at.timestamp(), 0.0)
        popularity[key] = popularity.get(key, 0.0) + weight
        trending[key] = trending.get(key, 0.0) + weight * math.exp(-decay * age)
    return popularity, trending


def compute_popularity() -> dict[str, tuple[float, float, str, str]]:
    """Score every item with events in the popularity window: ``{key: (score, trending, cat, label)}``."""
    from behavior.models import Event
    from recommendations.adapter import get_adapter

    # the window and the trending decay count back from the newest stored event, so the items
    # of an imported older history are popular too (recommendations.data.clock)
    now = data_now()
    since = now - timedelta(days=recommender_settings.POPULARITY_WINDOW_DAYS)
    field_name = item_key_field()
    rows = (
        Event.objects.filter(occurred_at__gte=since, is_bot=False, item__isnull=False)
        .order_by()
        .values_list(f"item__{field_name}", "event_type", "occurred_at")
        .iterator(chunk_size=5000)
    )
    popularity, trending = score_events(
        rows,
        now=now.timestamp(),
        half_life_days=recommender_settings.TRENDING_HALF_LIFE_DAYS,
        weights=recommender_settings.EVENT_WEIGHTS,
    )
    adapter = get_adapter()
    result: dict[str, tuple[float, float, str, str]] = {}
    keys = list(popularity)
    for start in range(0, len(keys), 2000):
        items = adapter.available_items(keys[start : start + 2000])
        for key, item in items.items():
            category = adapter.get_item_category(item) or ""
            label = adapter.get_category_label(item) if category else ""
            result[key] = (popularity[key], trending[key], category, label)
    return result


def build_snapshot(scores: dict[str, tuple[float, float, str, str]]) -> PopularitySnapshot:
    """Rank scored items overall and per category by trending score."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    snapshot = PopularitySnapshot()
    for key, (_score, trend, category, label) in ranked:
        if len(snapshot.overall) < OVERALL_SIZE:
            snapshot.overall.append((key, trend))
        if category:
            snapshot.item_category[key] = category
            snapshot.labels.setdefault(category, label)
            rows = snapshot.by_category.setdefault(category, [])
            if len(rows) < CATEGORY_SIZE:
                rows.append((key, trend))
    return snapshot


def refresh_popularity() -> int:
    """Recompute ``ItemPopularity`` from events and publish a new snapshot; returns items scored."""
    from recommendations.models import ItemPopularity

    scores = compute_popularity()
    now = timezone.now()  # a freshness marker: when the rows were computed, on the wall clock
    rows = [
        ItemPopularity(
            item_key=key,
            score=score,
            trending=trend,
            category=category,
            category_label=label,
            computed_at=now,
        )
        for key, (score, trend, category, label) in scores.items()
    ]
    with transaction.atomic():
        ItemPopularity.objects.all().delete()
        ItemPopularity.objects.bulk_create(rows, batch_size=2000)
    _publish(build_snapshot(scores), recommender_settings.CACHE_TIMEOUT * 4)
    return len(rows)


def _load_from_table() -> PopularitySnapshot | None:
    from recommendations.models import ItemPopularity

    rows = ItemPopularity.objects.order_by("-trending").values_list(
        "item_key", "score", "trending", "category", "category_label"
    )[:20000]
    scores = {key: (score, trend, cat, label) for key, score, trend, cat, label in rows}
    return build_snapshot(scores) if scores else None


def _publish(snapshot: PopularitySnapshot, timeout: int) -> None:
    stamp = uuid.uuid4().hex
    cache.set_many({f"{CACHE_KEY}:{stamp}": snapshot.to_dict(), STAMP_KEY: stamp}, timeout)
    with _lock:
        _local.clear()
        _local[stamp] = snapshot


_UNREAD = object()


def get_snapshot(stamp: Any = _UNREAD) -> PopularitySnapshot:
    """The current popularity snapshot: process memory, shared cache, table, or live events.

    A small stamp in the shared cache names the current snapshot, so each process reuses its
    in-memory copy (one tiny cache read per call) and never serves a snapshot another process
    or a cache clear has replaced. ``stamp``: the value of :data:`STAMP_KEY` when the caller
    has just read it with other entries (None: absent), so that read is not made again.
    """
    if stamp is _UNREAD:
        stamp = cache.get(STAMP_KEY)
    if stamp is not None:
        local = _local.get(stamp)
        if local is not None:
            return local
        data = cache.get(f"{CACHE_KEY}:{stamp}")
        if data is not None:
            snapshot = PopularitySnapshot.from_dict(data)
            with _lock:
                _local.clear()
                _local[stamp] = snapshot
            return snapshot
    snapshot = _load_from_table() or build_snapshot(compute_popularity())
    _publish(snapshot, recommender_settings.CACHE_TIMEOUT)
    return snapshot


def clear_local() -> None:
    """Forget the in-process copy (tests and the refresh task)."""
    _local.clear()
