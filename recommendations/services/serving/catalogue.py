"""A per-process snapshot of the recommendable items, kept current by a change log in Redis.

Every list asks which of its candidates may be shown (active, in stock, available: the
adapter's ``available_queryset``) and needs those items for display. One query per list
that builds a few dozen model instances costs more CPU than scoring the list; the catalogue
changes far less often than lists are served. So each process keeps the available items by
key and applies changes as they come:

- saving or deleting an item (``post_save``/``post_delete`` of the item model) increments a
  version in Redis and records the item's key with that version, once at once and once
  after the commit (a process that read the row in between sees the second increment);
  saving or deleting a category (the item model's ``category`` relation) marks everything;
- each use reads the version (one GET): unchanged, the snapshot answers; changed, only the
  recorded keys are fetched again (everything when marked or the log was trimmed past it).

``QuerySet.update()``, ``bulk_create()`` and raw SQL send no signal: which items are available
is read again (keys only) after ``MAX_AGE_SECONDS``, the same bound as replayed lists, and the
whole snapshot after ``FULL_SECONDS`` (display fields such as names, which explanations
already keep for as long). Without Redis, or with
an adapter that overrides ``available_items`` itself, every call asks the adapter (exact).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.db import transaction

from recommendations.adapter import DefaultRecommenderAdapter
from recommendations.services.serving.impressions import cache_key, redis_client
from recommendations.services.serving.model import log_once

logger = logging.getLogger(__name__)

VERSION_KEY = "rec:items:version"
CHANGED_KEY = "rec:items:changed"
FLOOR_KEY = "rec:items:floor"
# Bounds availability changes made without signals (QuerySet.update(), raw SQL): which items
# are available is read again (keys only) after this many seconds...
MAX_AGE_SECONDS = 30
# ...and the whole snapshot (display fields too) after this many.
FULL_SECONDS = 300
# Changes kept in the log; a snapshot further behind is rebuilt.
KEEP_CHANGES = 5000

# KEYS version, changed, floor; ARGV item key ("" = everything changed), changes kept.
_BUMP_LUA = """
local version = redis.call('INCR', KEYS[1])
if ARGV[1] == '' then
  redis.call('SET', KEYS[3], version)
else
  redis.call('ZADD', KEYS[2], version, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', version - tonumber(ARGV[2]))
return version
"""


@dataclass(frozen=True)
class _Snapshot:
    prefix: str
    version: int
    built: float  # monotonic time of the last full build
    checked: float  # monotonic time of the last check of which items are available
    items: dict[str, Any]


_lock = threading.Lock()
_snapshots: dict[str, _Snapshot] = {}


def reset(**_: Any) -> None:
    """Drop this process's snapshot (settings changed)."""
    with _lock:
        _snapshots.clear()


setting_changed.connect(reset, dispatch_uid="recommendations.catalogue.reset")


def _keys() -> list[str]:
    return [cache_key(key) for key in (VERSION_KEY, CHANGED_KEY, FLOOR_KEY)]


# Entries a caller may read in its own cache round trip (``state.prefetch``) and pass on.
PREFETCH_KEYS = (VERSION_KEY, FLOOR_KEY)


def available_items(
    adapter: DefaultRecommenderAdapter, keys: Iterable[str], prefetched: Any = None
) -> dict[str, Any]:
    """``adapter.available_items(keys)``, from the snapshot where it can answer exactly.

    ``prefetched``: a complete ``state.Prefetched`` read holding :data:`PREFETCH_KEYS` (else
    they are read here).
    """
    keys = list(keys)
    client = redis_client()
    if client is None or type(adapter).available_items is not DefaultRecommenderAdapter.available_items:
        return adapter.available_items(keys)
    versions = None
    if prefetched is not None and getattr(prefetched, "complete", False):
        versions = (int(prefetched.get(VERSION_KEY) or 0), int(prefetched.get(FLOOR_KEY) or 0))
    try:
        snapshot = _current(adapter, client, versions)
    except Exception as exc:
        log_once(f"catalogue:{type(exc).__name__}", "Item snapshot unavailable, asking the database: %s", exc)
        return adapter.available_items(keys)
    items = snapshot.items
    return {key: items[key] for key in dict.fromkeys(str(k) for k in keys) if key in items}


def trusted_until() -> float:
    """Wall-clock time until which this process's idea of the available items holds.

    A list assembled now must not outlive it (however long it is replayed): an item deactivated
    without a signal then leaves every list within ``MAX_AGE_SECONDS``, not that plus the
    replay's own lifetime. Without a snapshot (the adapter was asked) it is a full
    ``MAX_AGE_SECONDS`` from now.
    """
    now = time.time()
    held = _snapshots.get(cache_key(VERSION_KEY))
    if held is None:
        return now + MAX_AGE_SECONDS
    return now + max(0.0, MAX_AGE_SECONDS - (time.monotonic() - held.checked))


_URL_ATTRIBUTE = "_recommendations_url"


def url_context() -> tuple:
    """What an item URL depends on besides the item: URL configuration, script prefix, language.

    The same for every item of one list: :func:`item_url` callers may read it once.
    """
    from django.urls import get_script_prefix, get_urlconf
    from django.utils.translation import get_language

    return (get_urlconf(), get_script_prefix(), get_language())


def item_url(adapter: DefaultRecommenderAdapter, item: Any, context: tuple | None = None) -> str:
    """``adapter.get_item_url(item)``, kept on the item for the default adapter.

    The snapshot's items serve request after request and are replaced, never changed, when
    their row changes; ``reverse`` costs more than anything else in building a served entry.
    The URL is reused only while the URL configuration, script prefix and language are the
    ones it was built under (``context``: :func:`url_context` read now, else read here).
    """
    if type(adapter).get_item_url is not DefaultRecommenderAdapter.get_item_url:
        return adapter.get_item_url(item)
    if context is None:
        context = url_context()
    held = getattr(item, "__dict__", {}).get(_URL_ATTRIBUTE)
    if held is not None and held[0] == context:
        return held[1]
    url = adapter.get_item_url(item)
    with contextlib.suppress(AttributeError):
        item.__dict__[_URL_ATTRIBUTE] = (context, url)
    return url


def held_items(keys: Iterable[str]) -> dict[str, Any]:
    """The items among ``keys`` in the snapshot this process holds now (no version check, no I/O).

    For display text that may lag a little anyway (explanations' item names).
    """
    held = _snapshots.get(cache_key(VERSION_KEY))
    if held is None or time.monotonic() - held.built > FULL_SECONDS:
        return {}
    return {key: held.items[key] for key in keys if key in held.items}


def _current(adapter: DefaultRecommenderAdapter, client: Any, versions: tuple[int, int] | None) -> _Snapshot:
    version_key, changed_key, floor_key = _keys()
    if versions is None:
        raw_version, raw_floor = client.mget([version_key, floor_key])
        versions = int(raw_version or 0), int(raw_floor or 0)
    version, floor = versions
    held = _snapshots.get(version_key)
    now = time.monotonic()
    if held is None or now - held.built > FULL_SECONDS or held.version < max(floor, version - KEEP_CHANGES):
        # the version is read before the query: a change committed meanwhile bumps it again
        snapshot = _Snapshot(version_key, version, now, now, _fetch(adapter, None))
    elif held.version == version and now - held.checked <= MAX_AGE_SECONDS:
        return held
    else:
        items, checked = dict(held.items), held.checked
        if held.version != version:
            changed = [k.decode() for k in client.zrangebyscore(changed_key, f"({held.version}", version)]
            for key in changed:
                items.pop(key, None)
            items.update(_fetch(adapter, changed))
        if now - checked > MAX_AGE_SECONDS:
            # changes without signals: which items are available now (keys only, one cheap query)
            available = _available_keys(adapter)
            for key in items.keys() - available:
                del items[key]
            items.update(_fetch(adapter, list(available - items.keys())))
            checked = now
        snapshot = _Snapshot(version_key, version, held.built, checked, items)
    with _lock:
        _snapshots.clear()  # one configuration per process at a time
        _snapshots[version_key] = snapshot
    return snapshot


def _available_keys(adapter: DefaultRecommenderAdapter) -> set[str]:
    from behavior.items import item_key_field

    return {str(key) for key in adapter.available_queryset().values_list(item_key_field(), flat=True)}


def _fetch(adapter: DefaultRecommenderAdapter, keys: list[str] | None) -> dict[str, Any]:
    from behavior.items import item_key_field

    queryset = adapter.available_queryset()
    field = item_key_field()
    if keys is not None:
        if not keys:
            return {}
        queryset = queryset.filter(**{f"{field}__in": keys})
    return {str(getattr(item, field)): item for item in queryset}


def _bump(item_key: str) -> None:
    client = redis_client()
    if client is None:
        return
    try:
        version_key, changed_key, floor_key = _keys()
        client.eval(_BUMP_LUA, 3, version_key, changed_key, floor_key, item_key, KEEP_CHANGES)
    except Exception:
        # a missed change would leave snapshots stale until MAX_AGE_SECONDS
        logger.error("Could not record a catalogue change (%r)", item_key or "everything", exc_info=True)


def _on_item_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from behavior.items import item_key

    with contextlib.suppress(Exception):
        key = item_key(instance)
        _bump(key)
        transaction.on_commit(lambda: _bump(key))


def _on_category_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    with contextlib.suppress(Exception):
        _bump("")
        transaction.on_commit(lambda: _bump(""))


def connect() -> None:
    """Connect the change receivers (called by ``RecommendationsConfig.ready``)."""
    from django.db.models.signals import post_delete, post_save

    from behavior.items import get_item_model

    model = get_item_model()
    for name, signal in (("saved", post_save), ("deleted", post_delete)):
        signal.connect(_on_item_changed, sender=model, dispatch_uid=f"recommendations.catalogue.item_{name}")
    names = {field.name: field for field in model._meta.get_fields()}
    category = names.get("category")
    if category is not None and getattr(category, "is_relation", False) and category.related_model:
        for name, signal in (("saved", post_save), ("deleted", post_delete)):
            signal.connect(
                _on_category_changed,
                sender=category.related_model,
                dispatch_uid=f"recommendations.catalogue.category_{name}",
            )
