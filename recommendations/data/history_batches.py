"""Every user's latest events, in batches of users, as column arrays (the precompute's input).

One query lists the users; then one query per batch reads their latest events, as column arrays
in bounded memory, never model instances or per-event tuples kept around. On PostgreSQL with
integer keys the batch comes packed in one binary value
(:mod:`recommendations.data.packed_histories`); elsewhere as rows cut by a window function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models import Exists, OuterRef
from django.db.models.expressions import RawSQL

from behavior.items import get_item_model, item_key_field
from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.data.clock import data_now
from recommendations.data.events import any_of, item_key_lookup, latest_per, usable_events
from recommendations.data.packed_histories import integer_keys, packed_latest_events

__all__ = ["HistoryBatch", "ItemKeys", "active_users_queryset", "stream_user_histories"]


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


def active_users_queryset(days: int, clock: datetime | None = None) -> models.QuerySet:
    """Primary keys of users with (human) events in the ``days`` days before ``clock``, ascending.

    ``clock`` defaults to the data clock (:func:`recommendations.data.clock.data_now`): the
    shoppers of an imported older history are the active ones of that history.

    Written as ``EXISTS`` over the users so that the planner may probe the (user, time) index
    once per user (a quarter of the time of a ``DISTINCT`` over 400,000 recent events, and the
    first ids come at once) or hash-join the recent events, whichever its statistics favour.
    """
    since = (clock or data_now()) - timedelta(days=days)
    recent = Event.objects.filter(user_id=OuterRef("pk"), occurred_at__gte=since, is_bot=False).order_by()
    return get_user_model()._base_manager.filter(Exists(recent)).order_by("pk").values_list("pk", flat=True)


def stream_user_histories(
    *,
    user_ids: Iterable[Any] | None = None,
    active_days: int | None = None,
    limit: int = 50,
    batch_users: int | Callable[[int], list[int]] = 512,
    chunk_size: int | None = None,
) -> Iterator[HistoryBatch]:
    """The latest ``limit`` events of every user, in batches of ``batch_users`` users, in bounded memory.

    The users are listed first (one query); then one query per batch reads their latest events:
    on PostgreSQL with integer keys an index read per user that stops at ``limit``
    (``packed_latest_events``), elsewhere the per-user cut of a window function, which sorts only
    the batch's events instead of every event at once. Rows become column arrays,
    never model instances or per-event tuples kept around. Users without usable events are absent.

    Parameters
    ----------
    user_ids : the users to read (primary keys); default: those active in the ``active_days`` days
        before the data clock (:func:`active_users_queryset`; every user with events when that is
        None too).
    batch_users : users per batch, or a function of the number of users giving the batch sizes.
    """
    if limit <= 0:
        return
    if user_ids is None:
        if active_days is not None:
            user_ids = active_users_queryset(active_days)
        else:
            users = usable_events().filter(user__isnull=False).values("user_id")
            user_ids = users.distinct().order_by("user_id").values_list("user_id", flat=True)
    wanted = list(user_ids)
    size = chunk_size or recommender_settings.DATA_CHUNK_SIZE
    keys_of = ItemKeys()
    sizes = (
        batch_users(len(wanted)) if callable(batch_users) else [batch_users] * -(-len(wanted) // batch_users)
    )
    start = 0
    for count in sizes:
        batch, start = wanted[start : start + count], start + count
        events = any_of(usable_events(), "user_id", batch)
        ranked = latest_per(events, "user_id", limit)
        parts = list(_history_chunks(events, ranked, limit, size, keys_of, batch))
        if parts:
            yield _history_batch(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _user_starts(users: np.ndarray) -> np.ndarray:
    """Index of each user's first row in rows grouped by user."""
    if not len(users):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(users[1:] != users[:-1]) + 1]).astype(np.int64)


def _history_chunks(
    events: models.QuerySet,
    ranked: models.QuerySet,
    limit: int,
    size: int,
    keys_of: ItemKeys,
    user_ids: list,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Rows ``(user_id, item key, event type, unix seconds)`` by user, newest first, as column chunks.

    Newest first is the window's own order, so the database sorts once. On PostgreSQL the time is
    converted to epoch seconds by the database (the same correctly rounded float as
    ``datetime.timestamp()``) and items read as the foreign key, mapped to keys through one lookup
    per new item: no datetime, model object or join per row; with integer keys the batch's
    latest ``limit`` events of each of ``user_ids`` arrive as one packed value
    (``packed_latest_events``), otherwise ``ranked`` (cut by the window) comes as rows. Other
    databases go through the ORM iterator.
    """
    order = ("user_id", "-occurred_at", "-pk")
    if connection.vendor != "postgresql":
        # the window annotation is selected explicitly (see recommendations.data.histories)
        rows = ranked.values_list("user_id", item_key_lookup(), "event_type", "occurred_at", "recency")
        iterator = rows.order_by(*order).iterator(chunk_size=size)
        while chunk := list(itertools.islice(iterator, size)):
            users, keys, types, times, _ = zip(*chunk, strict=True)
            yield _columns(users, keys, types, [t.timestamp() for t in times])
        return
    column = f"{connection.ops.quote_name(Event._meta.db_table)}.{connection.ops.quote_name('occurred_at')}"
    # date_part, not EXTRACT(...)::float8: since PostgreSQL 14 EXTRACT computes a numeric, which
    # costs more than twice as much per row; both give the correctly rounded double (whole
    # microseconds since 1970 are exact in a double, and one IEEE division rounds them)
    epoch = RawSQL(f"date_part('epoch', {column})", (), output_field=models.FloatField())
    if integer_keys():
        binary = packed_latest_events(user_ids, epoch, limit, keys_of)
        if binary is not None:
            if len(binary[0]):
                yield binary
            return
    rows = ranked.annotate(epoch=epoch).values_list("user_id", "item_id", "event_type", "epoch", "recency")
    sql, params = rows.order_by(*order).query.sql_with_params()
    # a client-side cursor: one batch's rows are bounded, and a held server-side cursor would
    # materialise them once more at commit
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(size):
            users, items, types, stamps, _ = zip(*chunk, strict=True)
            yield _columns(users, keys_of(items), types, stamps)


class ItemKeys:
    """Item primary key -> public key, fetched once per item (nothing to fetch when the key is the pk)."""

    def __init__(self) -> None:
        model = get_item_model()
        self.field = item_key_field()
        self.is_pk = self.field == model._meta.pk.name
        self.manager = model._base_manager  # every item an event names, whatever the default filters
        self.keys: dict[Any, str] = {}

    def __call__(self, item_ids: tuple) -> list[str]:
        if self.is_pk:
            return [str(i) for i in item_ids]
        keys = self.keys
        missing = set(item_ids).difference(keys)
        if missing:
            rows = any_of(self.manager.all(), "pk", list(missing)).values_list("pk", self.field)
            keys.update((pk, str(key)) for pk, key in rows)
        return [keys.get(i, "") for i in item_ids]


def _columns(
    users: Sequence[Any], keys: Sequence[Any], types: Sequence[str], stamps: Sequence[float]
) -> tuple[np.ndarray, ...]:
    """One chunk of rows as the four column arrays (user, item key, event type, unix seconds)."""
    key_array = np.empty(len(keys), dtype=object)
    key_array[:] = [k if isinstance(k, str) else str(k) for k in keys]
    type_array = np.empty(len(types), dtype=object)
    type_array[:] = types
    return np.array(users), key_array, type_array, np.array(stamps, dtype=np.float64)


def _history_batch(
    users: np.ndarray, keys: np.ndarray, types: np.ndarray, stamps: np.ndarray
) -> HistoryBatch:
    """Rows of whole users, each user's newest first, turned oldest first."""
    starts = _user_starts(users)
    new_user = np.zeros(len(users), dtype=np.int64)
    new_user[starts] = 1
    owners = np.cumsum(new_user) - 1
    ends = np.append(starts[1:], len(users))
    # position p of a user's rows [s, e) takes the row at s + e - 1 - p
    order = starts[owners] + ends[owners] - 1 - np.arange(len(users))
    return HistoryBatch(
        user_ids=users[starts].tolist(),
        owners=owners,
        items=keys[order],
        event_types=types[order],
        timestamps=stamps[order],
    )
