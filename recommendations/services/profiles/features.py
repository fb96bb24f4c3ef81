"""Database -> profile feature arrays (the Django side of ``recommendations.core.profiles``).

One streamed query reads the users' events (bot-flagged ones included: they are what the
outlier detector must see), one reads the catalogue's categories and prices through the
adapter; everything else is vectorised in ``recommendations.core.profiles.features``.

On Postgres the event query's rows are glued into a few hundred long text rows by the
database and parsed by pandas: 1.5 million events arrive in a few seconds, where building a
Python tuple and a ``datetime`` per row through the ORM took most of a rebuild. Other
databases use the ORM.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models.functions import Extract

from behavior.items import get_item_model
from behavior.models import Event
from recommendations.adapter import get_adapter
from recommendations.core.profiles.features import ProfileEvents, category_medians
from recommendations.data.events import exclude_erased

CHUNK_SIZE = 20_000
# Postgres fast path: ASCII unit / record separators never occur in keys, types or numbers.
_FIELD_SEP, _RECORD_SEP = "\x1f", "\x1e"
_BUCKETS = 256


@dataclass
class Catalogue:
    """Category index and price of every item, by item primary key."""

    index_of_item: dict[Any, int]
    item_categories: np.ndarray  # (n_items,) int64, -1 = no category
    item_prices: np.ndarray  # (n_items,) float64, NaN = no price
    category_names: list[str]
    median_price: np.ndarray  # (n_categories,) float64


def load_catalogue() -> Catalogue:
    """Read every item once, asking the adapter for its category label and price."""
    adapter = get_adapter()
    model = get_item_model()
    queryset = model._default_manager.order_by()
    names = {f.name for f in model._meta.get_fields()}
    if "category" in names and model._meta.get_field("category").is_relation:
        queryset = queryset.select_related("category")
    index_of_item: dict[Any, int] = {}
    categories: list[int] = []
    prices: list[float] = []
    category_index: dict[str, int] = {}
    for item in queryset.iterator(chunk_size=CHUNK_SIZE):
        index_of_item[item.pk] = len(categories)
        label = adapter.get_category_label(item) if adapter.get_item_category(item) is not None else ""
        categories.append(category_index.setdefault(label, len(category_index)) if label else -1)
        price = adapter.get_item_price(item)
        prices.append(float(price) if price is not None and float(price) > 0 else np.nan)
    item_categories = np.asarray(categories, dtype=np.int64)
    item_prices = np.asarray(prices, dtype=np.float64)
    category_names = list(category_index)
    return Catalogue(
        index_of_item=index_of_item,
        item_categories=item_categories,
        item_prices=item_prices,
        category_names=category_names,
        median_price=category_medians(item_categories, item_prices, len(category_names)),
    )


def profile_users(user_ids: Sequence[Any] | None = None) -> tuple[list[Any], list[str]]:
    """Primary keys and usernames of the users to profile (every active user by default)."""
    user_model = get_user_model()
    queryset = user_model._default_manager.filter(is_active=True).order_by("pk")
    if user_ids is not None:
        queryset = queryset.filter(pk__in=list(user_ids))
    rows = list(queryset.values_list("pk", user_model.USERNAME_FIELD))
    return [pk for pk, _ in rows], [str(name) for _, name in rows]


def load_profile_events(user_pks: Sequence[Any], catalogue: Catalogue, *, restrict: bool) -> ProfileEvents:
    """Stream the events of ``user_pks`` into :class:`ProfileEvents` (user index = position in ``user_pks``).

    ``restrict=False`` reads every user's events (a full rebuild: one scan, no huge IN list)
    and drops those of users not in ``user_pks``. The events come in primary-key order, whatever
    order the database read them in: the sums over a user's events (money, price levels,
    affinities) then add the same numbers in the same order whether the user is read alone, in a
    chunk or with everyone, so a chunked rebuild computes exactly the features of one process.
    """
    queryset = exclude_erased(Event.objects.filter(user__isnull=False).order_by())
    if restrict:
        queryset = queryset.filter(user_id__in=list(user_pks))
    if connections[queryset.db].vendor == "postgresql":
        return _copy_profile_events(queryset, user_pks, catalogue)
    position = {pk: i for i, pk in enumerate(user_pks)}
    rows = queryset.values_list(
        "user_id", "item_id", "event_type", "occurred_at", "value", "quantity", "is_bot", "pk"
    ).iterator(chunk_size=CHUNK_SIZE)
    keys: list[Any] = []
    users: list[int] = []
    items: list[int] = []
    types: list[str] = []
    stamps: list[float] = []
    values: list[float] = []
    quantities: list[float] = []
    bots: list[bool] = []
    item_index = catalogue.index_of_item
    nan = float("nan")
    for user_id, item_id, event_type, occurred_at, value, quantity, is_bot, key in rows:
        index = position.get(user_id)
        if index is None:
            continue
        keys.append(key)
        users.append(index)
        items.append(item_index.get(item_id, -1) if item_id is not None else -1)
        types.append(event_type)
        stamps.append(occurred_at.timestamp())
        values.append(float(value) if value is not None else nan)
        quantities.append(float(quantity or 1))
        bots.append(bool(is_bot))
    item_rows = np.asarray(items, dtype=np.int64)
    known = item_rows >= 0
    categories = np.full(len(item_rows), -1, dtype=np.int64)
    prices = np.full(len(item_rows), np.nan)
    categories[known] = catalogue.item_categories[item_rows[known]]
    prices[known] = catalogue.item_prices[item_rows[known]]
    return _in_key_order(
        np.argsort(np.asarray(keys), kind="stable"),
        ProfileEvents(
            n_users=len(user_pks),
            users=np.asarray(users, dtype=np.int64),
            event_types=np.asarray(types, dtype=object),
            timestamps=np.asarray(stamps, dtype=np.float64),
            values=np.asarray(values, dtype=np.float64),
            quantities=np.asarray(quantities, dtype=np.float64),
            categories=categories,
            prices=prices,
            is_bot=np.asarray(bots, dtype=bool),
            category_names=catalogue.category_names,
        ),
    )


def _in_key_order(order: np.ndarray, events: ProfileEvents) -> ProfileEvents:
    """``events`` with their rows taken in ``order`` (the events' primary-key order)."""
    return ProfileEvents(
        n_users=events.n_users,
        users=events.users[order],
        event_types=events.event_types[order],
        timestamps=events.timestamps[order],
        values=events.values[order],
        quantities=events.quantities[order],
        categories=events.categories[order],
        prices=events.prices[order],
        is_bot=events.is_bot[order],
        category_names=events.category_names,
    )


def _dense(column: pd.Series, index_of: dict[Any, int]) -> np.ndarray:
    """Map a column of keys to dense indices (-1 when unknown), looking up each distinct key once."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    lookup = np.asarray([index_of.get(key, -1) for key in uniques.tolist()] + [-1], dtype=np.int64)
    return lookup[codes]  # code -1 (missing key) reads the trailing -1


def _copy_profile_events(queryset: Any, user_pks: Sequence[Any], catalogue: Catalogue) -> ProfileEvents:
    """Postgres: stream the events with COPY and parse them column-wise (no Python object per row)."""
    # The annotation last: Django's SQL lists model columns first, then annotations.
    queryset = queryset.annotate(ts=Extract("occurred_at", "epoch")).values_list(
        "id", "user_id", "item_id", "event_type", "value", "quantity", "is_bot", "ts"
    )
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    # Postgres glues the events into a few hundred long text rows (one per hash bucket of
    # users): the client handles ~256 rows instead of 1.5 million (one Python object or one
    # COPY message per event cost most of a rebuild), and pandas parses the text in C.
    fields = ", %s, ".join(
        f"q.{name}::text" for name in ("id", "user_id", "item_id", "event_type", "value", "quantity")
    )
    outer = (
        f"SELECT string_agg(concat({fields}, %s, q.is_bot::int::text, %s, q.ts::text), %s) "
        f"FROM ({sql}) q GROUP BY abs(hashtext(q.user_id::text)) %% {_BUCKETS}"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(outer, [_FIELD_SEP] * 7 + [_RECORD_SEP, *params])
        blocks = [row[0] for row in cursor.fetchall() if row[0]]
    text = _RECORD_SEP.join(blocks)
    columns = ["id", "user", "item", "type", "value", "quantity", "bot", "ts"]
    if not text:
        frame = pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    else:
        # Keys are read as text and matched against str(pk): integer and string keys alike.
        frame = pd.read_csv(
            io.StringIO(text),
            sep=_FIELD_SEP,
            lineterminator=_RECORD_SEP,
            header=None,
            names=columns,
            dtype={
                "id": np.int64,
                "user": str,
                "item": str,
                "type": "category",
                "ts": np.float64,
                "value": np.float64,
            },
            keep_default_na=False,
            na_values=[""],
            quoting=3,  # csv.QUOTE_NONE
        )
    users = _dense(frame["user"], {str(pk): i for i, pk in enumerate(user_pks)})
    keep = users >= 0  # a full rebuild scans everyone and drops users that are not profiled
    items = _dense(frame["item"], {str(pk): i for pk, i in catalogue.index_of_item.items()})[keep]
    known = items >= 0
    categories = np.full(len(items), -1, dtype=np.int64)
    prices = np.full(len(items), np.nan)
    categories[known] = catalogue.item_categories[items[known]]
    prices[known] = catalogue.item_prices[items[known]]
    types = frame["type"].astype(object).to_numpy()[keep]
    quantities = frame["quantity"].fillna(1).to_numpy(dtype=np.float64)[keep]
    return _in_key_order(
        np.argsort(frame["id"].to_numpy(dtype=np.int64)[keep], kind="stable"),
        ProfileEvents(
            n_users=len(user_pks),
            users=users[keep],
            event_types=types,
            timestamps=frame["ts"].to_numpy(dtype=np.float64)[keep],
            values=frame["value"].to_numpy(dtype=np.float64)[keep],
            quantities=np.where(quantities > 0, quantities, 1.0),
            categories=categories,
            prices=prices,
            is_bot=(frame["bot"].astype(str).to_numpy() == "1")[keep],
            category_names=catalogue.category_names,
        ),
    )
