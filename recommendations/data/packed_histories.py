"""The latest events of a batch of users in one packed binary read (PostgreSQL, integer keys).

The database packs the rows into fixed-width binary records, which NumPy reads in one call:
no Python object per event. :mod:`recommendations.data.history_batches` falls back to its
row read where this shape does not fit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from behavior.items import get_item_model
from behavior.models import Event, EventType
from recommendations.data.events import usable_events

__all__ = ["integer_keys", "packed_latest_events"]

_INTEGER_FIELDS = frozenset(
    {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField"}
)
# one event as the database packs it for the batch read: user, item, type, epoch seconds, primary key
_PACKED_ROW = np.dtype([("user", ">i8"), ("item", ">i8"), ("type", ">i4"), ("epoch", ">f8"), ("pk", ">i8")])


def integer_keys() -> bool:
    """Whether user and item primary keys are integers (the binary read casts them to int8)."""
    user_pk, item_pk = get_user_model()._meta.pk, get_item_model()._meta.pk
    return {user_pk.get_internal_type(), item_pk.get_internal_type()} <= _INTEGER_FIELDS


def packed_latest_events(
    user_ids: list, epoch: RawSQL, limit: int, keys_of: Callable[[tuple], list[str]]
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
    names = [str(name) for name in EventType.values]  # the choices of Event.event_type, in order
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
