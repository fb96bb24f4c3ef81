"""The bridge from the database to ``recommendations.core``: events as plain arrays.

Events are streamed with a server-side cursor (``QuerySet.iterator(chunk_size=...)``
names a cursor on Postgres), so memory holds one chunk of rows plus the growing result
arrays, never a list of model instances. Shopper keys are the username for users and
``"v:<visitor_id>"`` for anonymous visitors; items are keyed by the item model's public
key field (``behavior.items.item_key_field()``), never by an assumed integer primary key.
Bot-flagged events and events without an item never leave the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from behavior.items import get_item_model, item_key_field
from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.core.dataset import EventLog, History

VISITOR_PREFIX = "v:"

__all__ = [
    "VISITOR_PREFIX",
    "HistoryBatch",
    "active_users_queryset",
    "exclude_erased",
    "item_key_lookup",
    "load_event_log",
    "load_histories",
    "shopper_key",
    "stream_user_histories",
    "usable_events",
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


def _username_lookup() -> str:
    return f"user__{get_user_model().USERNAME_FIELD}"


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


def load_event_log(
    *,
    window_days: int | None = None,
    user_ids: Iterable[Any] | None = None,
    chunk_size: int | None = None,
) -> EventLog:
    """Stream the usable events into an :class:`EventLog`, in bounded memory.

    Parameters
    ----------
    window_days:
        Only events of the last ``window_days`` days (None = every event).
    user_ids:
        Only the events of these users (primary keys); anonymous events are then left out.
    chunk_size:
        Rows per round trip of the server-side cursor (default ``DATA_CHUNK_SIZE``).

    Events whose shopper has neither a user nor a visitor id are skipped. Repeated shopper,
    item and type strings are interned, so the object arrays share one string per value.
    """
    queryset = usable_events()
    if window_days is not None:
        queryset = queryset.filter(occurred_at__gte=timezone.now() - timedelta(days=window_days))
    if user_ids is not None:
        queryset = queryset.filter(user_id__in=list(user_ids))
    rows = queryset.values_list(
        _username_lookup(), "visitor_id", item_key_lookup(), "event_type", "occurred_at", "value"
    ).iterator(chunk_size=chunk_size or recommender_settings.DATA_CHUNK_SIZE)

    batch = chunk_size or recommender_settings.DATA_CHUNK_SIZE
    columns = _Columns(capacity=batch)
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
            columns.extend(*buffers)
            for buffer in buffers:
                buffer.clear()
    if users:
        columns.extend(*buffers)
    return columns.to_event_log()


def load_histories(
    *,
    users: Iterable[Any] | None = None,
    visitors: Iterable[str] | None = None,
    limit: int = 50,
) -> dict[str, History]:
    """The latest ``limit`` events of each shopper, oldest first: ``{shopper key: history}``.

    ``users`` are user instances or primary keys, ``visitors`` anonymous visitor ids
    (only their events not yet attached to a user). With neither given, every shopper is
    read (bounded per shopper, but call it in batches on a large shop). The per-shopper cut
    happens in the database with a window function, so a long history costs no transfer.
    A history item is ``(item_key, event_type, unix_ts)``.
    """
    everyone = users is None and visitors is None
    histories: dict[str, list[tuple[str, str, float]]] = {}
    key_lookup = item_key_lookup()
    if everyone or users is not None:
        queryset = usable_events().filter(user__isnull=False)
        if users is not None:
            ids = [getattr(user, "pk", user) for user in users]
            if not ids:
                queryset = queryset.none()
            queryset = queryset.filter(user_id__in=ids)
        _collect(histories, queryset, "user_id", (_username_lookup(), "visitor_id"), key_lookup, limit)
    if everyone or visitors is not None:
        queryset = usable_events().filter(user__isnull=True).exclude(visitor_id="")
        if visitors is not None:
            queryset = queryset.filter(visitor_id__in=[str(v) for v in visitors])
        _collect(histories, queryset, "visitor_id", ("visitor_id", "visitor_id"), key_lookup, limit)
    return histories


def _collect(
    histories: dict[str, list[tuple[str, str, float]]],
    queryset: models.QuerySet,
    partition: str,
    who: tuple[str, str],
    key_lookup: str,
    limit: int,
) -> None:
    if limit <= 0:
        return
    ranked = queryset.annotate(
        recency=Window(
            RowNumber(), partition_by=[F(partition)], order_by=[F("occurred_at").desc(), F("pk").desc()]
        )
    ).filter(recency__lte=limit)
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


@dataclass
class HistoryBatch:
    """The latest events of a batch of users as flat columns (the precompute's input).

    Row ``r`` is ``user_ids[r]``; ``owners`` is ascending and each row's events are oldest first
    (ties in primary-key order), exactly the order ``load_histories`` gives one history.
    """

    user_ids: list[Any]
    owners: np.ndarray  # (n,) int64
    items: np.ndarray  # (n,) object: item keys (str)
    event_types: np.ndarray  # (n,) object: canonical event type names
    timestamps: np.ndarray  # (n,) float64 unix seconds

    def histories(self) -> list[list[tuple[str, str, float]]]:
        """The same events as ``load_histories`` histories, one per row (for checks and fallbacks)."""
        out: list[list[tuple[str, str, float]]] = [[] for _ in self.user_ids]
        for owner, key, event_type, stamp in zip(
            self.owners.tolist(),
            self.items.tolist(),
            self.event_types.tolist(),
            self.timestamps.tolist(),
            strict=True,
        ):
            out[owner].append((key, event_type, stamp))
        return out


def active_users_queryset(days: int) -> models.QuerySet:
    """Primary keys of users with (human) events in the last ``days`` days, as a subquery."""
    since = timezone.now() - timedelta(days=days)
    return (
        Event.objects.filter(occurred_at__gte=since, user__isnull=False, is_bot=False)
        .order_by()
        .values("user_id")
    )


def stream_user_histories(
    *,
    user_ids: Iterable[Any] | None = None,
    active_days: int | None = None,
    limit: int = 50,
    batch_users: int = 512,
    chunk_size: int | None = None,
) -> Iterator[HistoryBatch]:
    """The latest ``limit`` events of every user, in batches of ``batch_users`` users, in bounded memory.

    One query streams every wanted user's events through a server-side cursor, ordered by user and
    time (the per-user cut is a window function in the database); rows become column arrays, never
    model instances or per-event tuples kept around. Users without usable events are absent.

    Parameters
    ----------
    user_ids : the users to read (primary keys); default: those active in the last ``active_days``
        days (every user with events when that is None too).
    """
    queryset = usable_events().filter(user__isnull=False)
    if user_ids is not None:
        queryset = queryset.filter(user_id__in=list(user_ids))
    elif active_days is not None:
        queryset = queryset.filter(user_id__in=active_users_queryset(active_days))
    if limit <= 0:
        return
    ranked = queryset.annotate(
        recency=Window(
            RowNumber(), partition_by=[F("user_id")], order_by=[F("occurred_at").desc(), F("pk").desc()]
        )
    ).filter(recency__lte=limit)
    # the window annotation is selected explicitly (see _collect)
    rows = ranked.values_list(
        "user_id", item_key_lookup(), "event_type", "occurred_at", "pk", "recency"
    ).order_by("user_id", "occurred_at", "pk")
    users: list[Any] = []
    owners: list[int] = []
    keys: list[str] = []
    types: list[str] = []
    stamps: list[float] = []
    current: Any = object()  # no user yet
    for user_id, key, event_type, occurred_at, _pk, _rank in rows.iterator(
        chunk_size=chunk_size or recommender_settings.DATA_CHUNK_SIZE
    ):
        if user_id != current:
            if len(users) >= batch_users:
                yield _history_batch(users, owners, keys, types, stamps)
                users, owners, keys, types, stamps = [], [], [], [], []
            current = user_id
            users.append(user_id)
        owners.append(len(users) - 1)
        keys.append(key)
        types.append(event_type)
        stamps.append(occurred_at.timestamp())
    if users:
        yield _history_batch(users, owners, keys, types, stamps)


def _history_batch(users: list, owners: list, keys: list, types: list, stamps: list) -> HistoryBatch:
    return HistoryBatch(
        user_ids=users,
        owners=np.array(owners, dtype=np.int64),
        items=np.array([str(key) for key in keys], dtype=object),
        event_types=np.array(types, dtype=object),
        timestamps=np.array(stamps, dtype=np.float64),
    )
