"""Per-shopper histories: the latest events of each shopper, oldest first.

The per-shopper cut happens in the database with a window function
(:func:`recommendations.data.events.latest_per`), so a long history costs no transfer. The
batched read of every user's history for the precompute is
:mod:`recommendations.data.history_batches`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from recommendations.core.dataset import History
from recommendations.data.events import (
    item_key_lookup,
    latest_per,
    shopper_key,
    usable_events,
    username_lookup,
)

__all__ = ["load_histories"]


def load_histories(
    *,
    users: Iterable[Any] | None = None,
    visitors: Iterable[str] | None = None,
    limit: int = 50,
) -> dict[str, History]:
    """The latest ``limit`` events of each shopper, oldest first: ``{shopper key: history}``.

    ``users`` are user instances or primary keys, ``visitors`` anonymous visitor ids
    (only their events not yet attached to a user). With neither given, every shopper is
    read (bounded per shopper, but call it in batches on a large shop).
    A history item is ``(item_key, event_type, unix_ts)``.
    """
    everyone = users is None and visitors is None
    histories: dict[str, History] = {}
    key_lookup = item_key_lookup()
    if everyone or users is not None:
        queryset = usable_events().filter(user__isnull=False)
        if users is not None:
            ids = [getattr(user, "pk", user) for user in users]
            if not ids:
                queryset = queryset.none()
            queryset = queryset.filter(user_id__in=ids)
        _collect(histories, queryset, "user_id", (username_lookup(), "visitor_id"), key_lookup, limit)
    if everyone or visitors is not None:
        queryset = usable_events().filter(user__isnull=True).exclude(visitor_id="")
        if visitors is not None:
            queryset = queryset.filter(visitor_id__in=[str(v) for v in visitors])
        _collect(histories, queryset, "visitor_id", ("visitor_id", "visitor_id"), key_lookup, limit)
    return histories


def _collect(
    histories: dict[str, History],
    queryset: models.QuerySet,
    partition: str,
    who: tuple[str, str],
    key_lookup: str,
    limit: int,
) -> None:
    """Add the latest ``limit`` events of each ``partition`` value of ``queryset`` to ``histories``."""
    if limit <= 0:
        return
    ranked = latest_per(queryset, partition, limit)
    name_lookup, visitor_lookup = who
    # The window annotation is selected explicitly: Django mis-aligns the columns of a
    # filtered window query otherwise.
    rows = ranked.values_list(
        name_lookup, visitor_lookup, key_lookup, "event_type", "occurred_at", "pk", "recency"
    )
    is_user = partition == "user_id"
    collected: dict[str, list[tuple[float, int, str, str]]] = {}
    for name, visitor_id, key, event_type, occurred_at, pk, _ in rows.iterator(chunk_size=5000):
        shopper = shopper_key(name if is_user else None, "" if is_user else visitor_id)
        if shopper is None:
            continue
        collected.setdefault(shopper, []).append((occurred_at.timestamp(), pk, str(key), event_type))
    for shopper, rows_of_shopper in collected.items():
        # Oldest first; the insertion order breaks ties between events of the same instant.
        rows_of_shopper.sort()
        histories[shopper] = [(key, event_type, stamp) for stamp, _, key, event_type in rows_of_shopper]
