"""Per-shopper exclusion state kept in the cache: "not interested" marks and purchases."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from recommendations.conf import recommender_settings


def _who(user_id: Any, visitor_id: str) -> str:
    return f"u:{user_id}" if user_id is not None else f"v:{visitor_id}"


def precomputed_cache_key(user_id: Any) -> str:
    return f"rec:pre:{user_id}"


def _not_interested_key(user_id: Any, visitor_id: str) -> str:
    return f"rec:ni:{_who(user_id, visitor_id)}"


def _bought_key(user_id: Any, latest_ts: float | None) -> str:
    return f"rec:bought:{user_id}:{latest_ts or 0}"


def _cached(cache_key: str, prefetched: dict | None) -> Any:
    """A value from one ``get_many`` done beforehand (absent there = a miss), else from the cache."""
    if prefetched is None:
        return cache.get(cache_key)
    return prefetched.get(cache_key)


def prefetch(user_id: Any, visitor_id: str, latest_ts: float | None) -> dict:
    """Every per-shopper cache entry a list needs, in ONE cache round trip."""
    keys = []
    if user_id is not None:
        keys += [precomputed_cache_key(user_id), _bought_key(user_id, latest_ts)]
    if user_id is not None or visitor_id:
        keys.append(_not_interested_key(user_id, visitor_id))
    return cache.get_many(keys) if keys else {}


def not_interested_keys(user_id: Any, visitor_id: str, prefetched: dict | None = None) -> set[str]:
    """Items the shopper marked "not interested" (cached until the next mark)."""
    from recommendations.models import NotInterested

    if user_id is None and not visitor_id:
        return set()
    cache_key = _not_interested_key(user_id, visitor_id)
    keys = _cached(cache_key, prefetched)
    if keys is None:
        queryset = (
            NotInterested.objects.filter(user_id=user_id)
            if user_id is not None
            else NotInterested.objects.filter(visitor_id=visitor_id, user__isnull=True)
        )
        keys = sorted(set(queryset.values_list("item_key", flat=True)))
        cache.set(cache_key, keys, recommender_settings.CACHE_TIMEOUT)
    return set(keys)


def mark_not_interested(*, user_id: Any, visitor_id: str, item_key: str) -> bool:
    """Record a "not interested" mark (idempotent); returns True when it is new."""
    from recommendations.models import NotInterested

    lookup = {"user_id": user_id} if user_id is not None else {"visitor_id": visitor_id, "user__isnull": True}
    if NotInterested.objects.filter(item_key=item_key, **lookup).exists():
        return False
    NotInterested.objects.create(
        user_id=user_id, visitor_id="" if user_id is not None else visitor_id, item_key=item_key
    )
    cache.delete(_not_interested_key(user_id, visitor_id))
    return True


def purchased_keys_cached(user_id: Any, latest_ts: float | None, prefetched: dict | None = None) -> set[str]:
    """A user's purchased items, cached per latest event (a new purchase is a new event)."""
    from recommendations.serving.history import purchased_keys

    if user_id is None:
        return set()
    cache_key = _bought_key(user_id, latest_ts)
    keys = _cached(cache_key, prefetched)
    if keys is None:
        keys = sorted(purchased_keys(user_id))
        cache.set(cache_key, keys, recommender_settings.CACHE_TIMEOUT)
    return set(keys)
