"""Per-shopper exclusion state kept in the cache: "not interested" marks and purchases."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache import cache

from recommendations.conf import recommender_settings
from recommendations.services import personal_keys
from recommendations.services.serving import impressions
from recommendations.services.serving.freshness import digest
from recommendations.services.serving.model import log_once

logger = logging.getLogger(__name__)


def precomputed_cache_key(user_id: Any) -> str:
    """The cache entry of a user's precomputed list (``personal_keys.PRECOMPUTED``)."""
    return personal_keys.PRECOMPUTED.key(user_id)


def not_interested_cache_key(user_id: Any, visitor_id: str) -> str:
    """The cache entry holding a shopper's "not interested" keys (part of ``prefetch``)."""
    return personal_keys.not_interested_key(user_id, visitor_id)


_not_interested_key = not_interested_cache_key


def _bought_key(user_id: Any) -> str:
    return personal_keys.BOUGHT.key(user_id)


def _cached(cache_key: str, prefetched: dict | None) -> Any:
    """A value from one ``get_many`` done beforehand (absent there = a miss), else from the cache."""
    if prefetched is None:
        try:
            return cache.get(cache_key)
        except Exception as exc:
            log_once(f"cache-get:{type(exc).__name__}", "Cache unavailable, reading the database: %s", exc)
            return None
    return prefetched.get(cache_key)


class Prefetched(dict):
    """Cache values read in one round trip; ``digests`` fingerprints their stored bytes (Redis only).

    The API's fast path compares these fingerprints with the bytes it reads itself, so it
    knows that a list assembled from them is still built from the current entries.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.digests: dict[str, str] = {}
        # True when Redis answered: a key absent here is absent there
        self.complete = False


def prefetch(
    user_id: Any, visitor_id: str, latest_ts: float | None, *, extra: Sequence[str] = ()
) -> Prefetched:
    """Every per-shopper cache entry a list needs (plus ``extra`` keys), in ONE cache round trip.

    A cache error reads as all misses: the callers then ask the database.
    """
    keys = list(extra)
    if user_id is not None:
        keys += [precomputed_cache_key(user_id), _bought_key(user_id)]
    if user_id is not None or visitor_id:
        keys.append(_not_interested_key(user_id, visitor_id))
    if not keys:
        return Prefetched()
    client = impressions.redis_client()
    try:
        if client is None:
            return Prefetched(cache.get_many(keys))
        raw_values = client.mget([impressions.cache_key(key) for key in keys])
    except Exception as exc:
        log_once(f"prefetch:{type(exc).__name__}", "Cache unavailable, serving from the database: %s", exc)
        return Prefetched()
    found = Prefetched()
    found.complete = True
    for key, raw in zip(keys, raw_values, strict=True):
        if raw is not None:
            found[key] = impressions.redis_loads(raw)
            found.digests[key] = digest(raw)
    return found


# Set on the request by the API's real-time lane: a ``ClosingWrites`` it sends when it is done.
CLOSING_WRITES_ATTRIBUTE = "_recommendations_closing_writes"


class ClosingWrites:
    """Cache entries and impression rows of one request, written in the round trip that ends it.

    The API's real-time lane (``api.fastpath``) stores its answer for replay in one Redis
    pipeline; the service's own writes (the rows the network scored, the impression) join
    that pipeline instead of costing a round trip each. Whoever sets it on a request (as
    :data:`CLOSING_WRITES_ATTRIBUTE`) queues it with :meth:`queue` and reports with
    :meth:`written` or :meth:`failed`; the values are those ``cache.set`` would store.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any, int | None]] = []
        self.impressions: list[dict] = []

    def queue(self, pipe: Any) -> int:
        """Queue every write on the Redis ``pipe``; returns how many replies they will have."""
        backend = cache._cache  # type: ignore[attr-defined]  # the Redis backend behind the proxy
        for key, value, timeout in self.entries:
            key = cache.make_and_validate_key(key)
            seconds = cache.get_backend_timeout(timeout)
            if seconds == 0:
                pipe.delete(key)
            else:
                pipe.set(key, backend._serializer.dumps(value), ex=seconds)
        if self.impressions:
            impressions.queue_rows(pipe, self.impressions)
        return len(self.entries) + bool(self.impressions)

    def written(self, replies: list) -> None:
        """After the pipeline ran: ``replies`` are those of the queued writes, in order."""
        if self.impressions:
            impressions.rows_queued(replies[-1])

    def failed(self, exc: Exception) -> None:
        """The pipeline failed: entries are lost (as ``cache_set`` would), impressions kept here."""
        log_once(f"cache-set:{type(exc).__name__}", "Cache unavailable, entries not stored: %s", exc)
        if self.impressions:
            impressions.keep_in_process(self.impressions)


def cache_set(key: str, value: Any, timeout: int | None, *, closing: ClosingWrites | None = None) -> None:
    """``cache.set`` that logs instead of failing the request when the cache is down.

    ``closing``: the request's :class:`ClosingWrites`, which writes the entry instead.
    """
    if closing is not None:
        closing.entries.append((key, value, timeout))
        return
    try:
        cache.set(key, value, timeout)
    except Exception as exc:
        log_once(f"cache-set:{type(exc).__name__}", "Cache unavailable, entries not stored: %s", exc)


def not_interested_keys(user_id: Any, visitor_id: str, prefetched: dict | None = None) -> set[str]:
    """Items the shopper marked "not interested" (cached until the next mark)."""
    from recommendations.models import NotInterested
    from recommendations.services.serving.history import USER_PLACEHOLDER, compiled_rows

    if user_id is None and not visitor_id:
        return set()
    cache_key = _not_interested_key(user_id, visitor_id)
    keys = _cached(cache_key, prefetched)
    if keys is None:
        rows: Iterable[Any]
        if user_id is not None:
            rows = compiled_rows(
                ("not_interested",),
                NotInterested,
                lambda user: NotInterested.objects.filter(user_id=user).values_list("item_key"),
                USER_PLACEHOLDER,
                user_id,
            )
        else:
            rows = NotInterested.objects.filter(visitor_id=visitor_id, user__isnull=True).values_list(
                "item_key"
            )
        keys = sorted({key for (key,) in rows})
        cache_set(cache_key, keys, recommender_settings.CACHE_TIMEOUT)
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


def purchased_keys_cached(
    user_id: Any, latest_ts: float | None, prefetched: dict | None = None, *, oldest_ts: float | None = None
) -> set[str]:
    """A user's purchased items up to their event at ``latest_ts``, cached per user.

    A cached set computed when the latest event was at ``as_of`` stays valid while the
    caller's recent history (oldest event at ``oldest_ts``) reaches back to ``as_of``: every
    later purchase is then in that history, which callers exclude themselves. A new event
    therefore costs no purchase query unless the history no longer overlaps.
    """
    from recommendations.services.serving.history import purchased_keys

    if user_id is None:
        return set()
    cache_key = _bought_key(user_id)
    cached = _cached(cache_key, prefetched)
    if isinstance(cached, dict):
        as_of = cached.get("as_of")
        if as_of == latest_ts or (as_of is not None and oldest_ts is not None and oldest_ts <= as_of):
            return set(cached["keys"])
    keys = sorted(purchased_keys(user_id))
    cache_set(cache_key, {"keys": keys, "as_of": latest_ts}, recommender_settings.CACHE_TIMEOUT)
    return set(keys)
