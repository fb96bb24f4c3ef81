"""The bridge from the database to ``recommendations.core``: events as plain arrays.

This module holds what every read of events shares (which events are usable, how shoppers and
items are keyed) and the whole-log read, :func:`load_event_log`; per-shopper histories are read
by :mod:`recommendations.data.histories` and :mod:`recommendations.data.history_batches`.

Events are streamed with a server-side cursor (``QuerySet.iterator(chunk_size=...)``
names a cursor on Postgres), so memory holds one chunk of rows plus the growing result
arrays, never a list of model instances. Shopper keys are the username for users and
``"v:<visitor_id>"`` for anonymous visitors; items are keyed by the item model's public
key field (``behavior.items.item_key_field()``), never by an assumed integer primary key.
Bot-flagged events and events without an item never leave the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from behavior.items import get_item_model, item_key_field
from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.core.dataset import EventLog
from recommendations.data.clock import data_now

VISITOR_PREFIX = "v:"

__all__ = [
    "VISITOR_PREFIX",
    "any_of",
    "column_chunks",
    "exclude_erased",
    "item_key_lookup",
    "latest_per",
    "load_event_log",
    "shopper_key",
    "usable_events",
    "username_lookup",
]


def shopper_key(username: str | None, visitor_id: str) -> str | None:
    """The core's name of one shopper: the username, or ``"v:<visitor_id>"`` when anonymous."""
    if username:
        return str(username)
    if visitor_id:
        return VISITOR_PREFIX + visitor_id
    return None


def exclude_erased(queryset: models.QuerySet) -> models.QuerySet:
    """Privacy hook: drop events of shoppers erased by ``forget_user``.

    ``forget_user`` deletes a person's events, so normally nothing is left to drop here.
    Once ``recommendations.models.privacy`` records erasures, it may export a callable
    ``events_exclusion() -> Q`` (events that must never be read again, e.g. of an erasure
    still in progress); every read of this module goes through this one function.
    """
    from recommendations.models import privacy

    exclusion = getattr(privacy, "events_exclusion", None)
    if exclusion is not None:
        queryset = queryset.exclude(exclusion())
    return queryset


def usable_events() -> models.QuerySet:
    """Events training and serving may read: human, with an item, not erased; unordered."""
    queryset = Event.objects.filter(is_bot=False, item__isnull=False).order_by()
    return exclude_erased(queryset)


def item_key_lookup() -> str:
    """ORM path to the item key: the FK column itself when the key is the primary key (no join)."""
    field = item_key_field()
    if field == get_item_model()._meta.pk.name:
        return "item_id"
    return f"item__{field}"


def latest_per(queryset: models.QuerySet, partition: str, limit: int) -> models.QuerySet:
    """``queryset`` cut to the latest ``limit`` events of each ``partition`` value.

    The rank is annotated as ``recency`` (1 = newest; ties of the same instant broken by the
    primary key, newest first), computed by the database with a window function.
    """
    return queryset.annotate(
        recency=Window(
            RowNumber(), partition_by=[F(partition)], order_by=[F("occurred_at").desc(), F("pk").desc()]
        )
    ).filter(recency__lte=limit)


def username_lookup() -> str:
    """ORM path to the username of an event's user."""
    return f"user__{get_user_model().USERNAME_FIELD}"


def any_of(queryset: models.QuerySet, field: str, values: list) -> models.QuerySet:
    """Rows whose ``field`` is one of ``values``: ``= ANY(array)`` on PostgreSQL (one parameter, not
    one per value, which the ORM and the driver would otherwise build and substitute one by one),
    ``IN (...)`` elsewhere."""
    if connection.vendor != "postgresql":
        return queryset.filter(**{f"{field}__in": values})
    model = queryset.model
    column = (model._meta.pk if field == "pk" else model._meta.get_field(field)).column
    quote = connection.ops.quote_name
    return queryset.extra(where=[f"{quote(model._meta.db_table)}.{quote(column)} = ANY(%s)"], params=[values])


class _Columns:
    """Column arrays that grow by doubling: amortised O(1) appends, no list of row tuples."""

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self.users = np.empty(capacity, dtype=object)
        self.items = np.empty(capacity, dtype=object)
        self.event_types = np.empty(capacity, dtype=object)
        self.timestamps = np.empty(capacity, dtype=np.float64)
        self.values = np.empty(capacity, dtype=np.float64)

    _names = ("users", "items", "event_types", "timestamps", "values")

    def _grow(self, needed: int) -> None:
        capacity = len(self.timestamps)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2, 1024)
        for name in self._names:
            old = getattr(self, name)
            new = np.empty(new_capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def extend(self, users: list, items: list, types: list, stamps: list, values: list) -> None:
        count = len(users)
        self._grow(self.size + count)
        end = self.size + count
        self.users[self.size : end] = users
        self.items[self.size : end] = items
        self.event_types[self.size : end] = types
        self.timestamps[self.size : end] = stamps
        self.values[self.size : end] = values
        self.size = end

    def to_event_log(self) -> EventLog:
        n = self.size
        return EventLog(
            users=self.users[:n].copy(),
            items=self.items[:n].copy(),
            event_types=self.event_types[:n].copy(),
            timestamps=self.timestamps[:n].copy(),
            values=self.values[:n].copy(),
            is_bot=np.zeros(n, dtype=bool),
        )


def window_events(
    *, window_days: int | None = None, clock: datetime | None = None, user_ids: Iterable[Any] | None = None
) -> models.QuerySet:
    """The usable events :func:`load_event_log` reads (parameters as there), unordered.

    The window is a lower bound on ``occurred_at``, so on PostgreSQL only the partitions that
    can hold it are scanned (plan-time pruning: the bound is a literal in the query).
    """
    queryset = usable_events()
    if window_days is not None:
        queryset = queryset.filter(occurred_at__gte=(clock or data_now()) - timedelta(days=window_days))
    if user_ids is not None:
        queryset = queryset.filter(user_id__in=list(user_ids))
    return queryset


def column_chunks(
    rows: Iterable[tuple[Any, ...]], batch: int
) -> Iterator[tuple[list[str], list[str], list[str], list[float], list[float]]]:
    """Event rows ``(username, visitor_id, item key, event type, occurred_at, value)`` as column lists.

    Yields (shoppers, items, types, unix seconds, values) of at most ``batch`` rows each, the lists
    re-used between chunks (consume each before the next). Rows without a shopper are skipped;
    repeated shopper, item and type strings are interned, so arrays built from them share one
    string per value.
    """
    interned: dict[str, str] = {}
    buffers: tuple[list, list, list, list, list] = ([], [], [], [], [])
    users, items, types, stamps, values = buffers
    for username, visitor_id, key, event_type, occurred_at, value in rows:
        shopper = shopper_key(username, visitor_id)
        if shopper is None:
            continue
        key = str(key)
        users.append(interned.setdefault(shopper, shopper))
        items.append(interned.setdefault(key, key))
        types.append(interned.setdefault(event_type, event_type))
        stamps.append(occurred_at.timestamp())
        values.append(float(value) if value is not None else np.nan)
        if len(users) >= batch:
            yield buffers
            for buffer in buffers:
                buffer.clear()
    if users:
        yield buffers


def load_event_log(
    *,
    window_days: int | None = None,
    clock: datetime | None = None,
    user_ids: Iterable[Any] | None = None,
    chunk_size: int | None = None,
) -> EventLog:
    """Stream the usable events into an :class:`EventLog`, in bounded memory.

    Parameters
    ----------
    window_days:
        Only events of the last ``window_days`` days before ``clock`` (None = every event).
    clock:
        The end the window counts back from (default: the data clock,
        :func:`recommendations.data.clock.data_now`, so an imported older history is read).
    user_ids:
        Only the events of these users (primary keys); anonymous events are then left out.
    chunk_size:
        Rows per round trip of the server-side cursor (default ``DATA_CHUNK_SIZE``).

    Events whose shopper has neither a user nor a visitor id are skipped. Repeated shopper,
    item and type strings are interned, so the object arrays share one string per value.
    """
    queryset = window_events(window_days=window_days, clock=clock, user_ids=user_ids)
    rows = queryset.values_list(
        username_lookup(), "visitor_id", item_key_lookup(), "event_type", "occurred_at", "value"
    ).iterator(chunk_size=chunk_size or recommender_settings.DATA_CHUNK_SIZE)

    batch = chunk_size or recommender_settings.DATA_CHUNK_SIZE
    columns = _Columns(capacity=batch)
    for chunk in column_chunks(rows, batch):
        columns.extend(*chunk)
    return columns.to_event_log()
