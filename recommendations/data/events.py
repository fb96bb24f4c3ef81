"""The bridge from the database to ``recommendations.core``: events as plain arrays.

Events are streamed with a server-side cursor (``QuerySet.iterator(chunk_size=...)``
names a cursor on Postgres), so memory holds one chunk of rows plus the growing result
arrays, never a list of model instances. Shopper keys are the username for users and
``"v:<visitor_id>"`` for anonymous visitors; items are keyed by the item model's public
key field (``behavior.items.item_key_field()``), never by an assumed integer primary key.
Bot-flagged events and events without an item never leave the database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.db.models import Exists, F, OuterRef, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, RowNumber

from behavior.items import get_item_model, item_key_field
from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.core.dataset import EventLog, History
from recommendations.data.clock import data_now

VISITOR_PREFIX = "v:"

__all__ = [
    "VISITOR_PREFIX",
    "HistoryBatch",
    "active_users_queryset",
    "any_of",
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
    queryset = usable_events()
    if window_days is not None:
        queryset = queryset.filter(occurred_at__gte=(clock or data_now()) - timedelta(days=window_days))
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
    (:func:`_binary_columns`), elsewhere the per-user cut of a window function, which sorts only
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
    keys_of = _ItemKeys()
    sizes = (
        batch_users(len(wanted)) if callable(batch_users) else [batch_users] * -(-len(wanted) // batch_users)
    )
    start = 0
    for count in sizes:
        batch, start = wanted[start : start + count], start + count
        events = any_of(usable_events(), "user_id", batch)
        ranked = events.annotate(
            recency=Window(
                RowNumber(),
                partition_by=[F("user_id")],
                order_by=[F("occurred_at").desc(), F("pk").desc()],
            )
        ).filter(recency__lte=limit)
        parts = list(_history_chunks(events, ranked, limit, size, keys_of, batch))
        if parts:
            yield _history_batch(*(np.concatenate(column) for column in zip(*parts, strict=True)))


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
    keys_of: _ItemKeys,
    user_ids: list,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Rows ``(user_id, item key, event type, unix seconds)`` by user, newest first, as column chunks.

    Newest first is the window's own order, so the database sorts once. On PostgreSQL the time is
    converted to epoch seconds by the database (the same correctly rounded float as
    ``datetime.timestamp()``) and items read as the foreign key, mapped to keys through one lookup
    per new item: no datetime, model object or join per row; with integer keys the batch's
    latest ``limit`` events of each of ``user_ids`` arrive as one packed value
    (:func:`_binary_columns`), otherwise ``ranked`` (cut by the window) comes as rows. Other
    databases go through the ORM iterator.
    """
    order = ("user_id", "-occurred_at", "-pk")
    if connection.vendor != "postgresql":
        # the window annotation is selected explicitly (see _collect)
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
    if _integer_keys():
        binary = _binary_columns(user_ids, epoch, limit, keys_of)
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


_INTEGER_FIELDS = frozenset(
    {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField"}
)
# one event as the database packs it for the batch read: user, item, type, epoch seconds, primary key
_PACKED_ROW = np.dtype([("user", ">i8"), ("item", ">i8"), ("type", ">i4"), ("epoch", ">f8"), ("pk", ">i8")])


def _integer_keys() -> bool:
    """Whether user and item primary keys are integers (the binary read casts them to int8)."""
    user_pk, item_pk = get_user_model()._meta.pk, get_item_model()._meta.pk
    return {user_pk.get_internal_type(), item_pk.get_internal_type()} <= _INTEGER_FIELDS


def _binary_columns(
    user_ids: list, epoch: RawSQL, limit: int, keys_of: _ItemKeys
) -> tuple[np.ndarray, ...] | None:
    """The latest ``limit`` events per user (user, item, event type, epoch) as columns, newest first.

    One query: for each user a ``LATERAL`` read of the (user, time) index, newest first, stopping
    after ``limit`` usable events, so a user with a long history costs ``limit`` index entries,
    not the whole history (reading every event of the batch and cutting here cost the database
    about four times as much on a demo shop with ~130 events per user). No Python object per row:
    the database packs the rows into fixed-width binary records (event types as their index in
    the field's choices), which NumPy reads in one call and orders (user, then time and primary
    key descending, as the window of the general read); item keys and type names are looked up
    once per distinct value. None when a row does not fit that shape (an event type outside the
    choices): the caller then reads the rows the general way.
    """
    names = [str(choice[0]) for choice in Event._meta.get_field("event_type").choices]
    quote = connection.ops.quote_name
    table = quote(Event._meta.db_table)
    type_code = RawSQL(
        f"COALESCE(array_position(%s::text[], {table}.{quote('event_type')}::text), 0)",
        (names,),
        output_field=models.IntegerField(),
    )
    user_column = f"{table}.{quote(Event._meta.get_field('user').column)}"
    latest = (
        usable_events()
        .extra(where=[f"{user_column} = batch_users.id"])  # the outer row of the LATERAL join
        .annotate(
            item_int=Cast("item_id", models.BigIntegerField()),
            type_code=type_code,
            epoch=epoch,
            pk_int=Cast("pk", models.BigIntegerField()),
        )
        .order_by("-occurred_at", "-pk")
        .values_list("item_int", "type_code", "epoch", "pk_int")[:limit]
    )
    sql, params = latest.query.sql_with_params()
    # the whole batch as one bytea of fixed-width big-endian records: one value to transfer and
    # decode instead of a Python tuple (or a COPY message) per event
    packed = (
        "SELECT string_agg(int8send(batch_users.id) || int8send(e.i) || int4send(e.t) || float8send(e.e)"
        " || int8send(e.k), ''::bytea) FROM unnest(%s::bigint[]) AS batch_users (id)"
        f" CROSS JOIN LATERAL ({sql}) AS e (i, t, e, k)"
    )
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # the planner's estimate of 512 index reads passes jit_above_cost, and compiling this
        # short query costs about as much as running it; SET LOCAL ends with this transaction
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(packed, [[int(pk) for pk in user_ids], *params])
        data = cursor.fetchone()[0]
    records = np.frombuffer(bytes(data or b""), dtype=_PACKED_ROW)
    if (records["type"] <= 0).any():
        return None
    # epoch seconds order as the timestamps do: distinct microseconds are distinct doubles
    order = np.lexsort((-records["pk"].astype(np.int64), -records["epoch"], records["user"]))
    records = records[order]
    items, inverse = np.unique(records["item"], return_inverse=True)
    key_table = np.empty(len(items), dtype=object)
    key_table[:] = keys_of(tuple(items.tolist()))
    type_table = np.empty(len(names) + 1, dtype=object)
    type_table[:] = ["", *names]
    return (
        records["user"].astype(np.int64),
        key_table[inverse.reshape(-1)],
        type_table[records["type"]],
        records["epoch"].astype(np.float64),
    )


class _ItemKeys:
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


def _columns(users: tuple, keys: tuple, types: tuple, stamps: Any) -> tuple[np.ndarray, ...]:
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
