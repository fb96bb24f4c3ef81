"""Per-user behaviour features computed from plain event arrays.

Every feature is a float column; ``NaN`` means "unknown for this user" (for instance the
average order value of someone who never bought). Missing values are explained per user
in ``FeatureTable.notes`` and filled later by :class:`~.preprocessing.FeatureScaler`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

SECONDS_PER_DAY = 86_400.0


def note(code: str, **params: Any) -> dict[str, Any]:
    """A profile note as stored: ``{"code", "params"}`` (JSON-ready; the words come when it is shown)."""
    return {"code": code, "params": params}


# A pause longer than this starts a new session (the usual web-analytics convention).
SESSION_GAP_SECONDS = 30 * 60

# Columns always present, in this order; affinity columns ("affinity:<category>") follow,
# then "propensity" and the optional embedding components ("embedding_<i>").
BASE_FEATURES: tuple[str, ...] = (
    "recency_days",  # days since the last event of any kind
    "purchase_recency_days",  # days since the last purchase (NaN: never bought)
    "tenure_days",  # days since the first event
    "frequency",  # orders: sessions that contain a purchase
    "monetary",  # total purchase value (NaN: purchases without any known price)
    "avg_order_value",  # monetary / frequency (NaN: no orders or no prices)
    "events",  # all events
    "views",
    "carts",  # add_to_cart events
    "purchases",  # purchase events (items bought)
    "conversion_rate",  # purchases / views (NaN: no views)
    "cart_abandonment_rate",  # share of cart additions not followed by a purchase (NaN: no carts)
    "sessions",
    "events_per_session",
    "peak_events_per_minute",  # most events in one clock minute (bots click far faster than people)
    "active_days",  # distinct days with events
    "price_level",  # mean item price / its category's median price (1.0 = typical)
    "bot_event_share",  # share of events the tracker flagged as bot traffic
)
AFFINITY_PREFIX = "affinity:"
EMBEDDING_PREFIX = "embedding_"


@dataclass
class ProfileEvents:
    """The events of many users as parallel arrays (one row per event, any order).

    Parameters
    ----------
    users : (n,) int64, dense user index in ``[0, n_users)``.
    event_types : (n,) object, canonical event type names.
    timestamps : (n,) float64 unix seconds.
    values : (n,) float64 money value of the event, NaN when unknown.
    quantities : (n,) float64 items per event (1 when unknown).
    categories : (n,) int64 index into ``category_names``; -1 when the item has none.
    prices : (n,) float64 catalogue price of the item, NaN when unknown.
    is_bot : (n,) bool, flagged as bot traffic by the tracker.
    """

    n_users: int
    users: np.ndarray
    event_types: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    quantities: np.ndarray
    categories: np.ndarray
    prices: np.ndarray
    is_bot: np.ndarray
    category_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.users.shape[0])


@dataclass
class FeatureTable:
    """Features of ``n_users`` users: ``values[i, j]`` is feature ``columns[j]`` of user ``i``.

    ``top_categories[i]`` lists the user's strongest category affinities as
    ``(category, share)`` pairs; ``notes[i]`` explains what is missing for user ``i``
    (:func:`note` dicts: a code and its numbers, put into words where they are shown).
    """

    columns: list[str]
    values: np.ndarray
    top_categories: list[list[tuple[str, float]]]
    notes: list[list[dict[str, Any]]]
    # Share of each user's events per category (unweighted), over every category (not only
    # the affinity columns): (n_users, len(category_names)); segments are found on these.
    category_shares: np.ndarray | None = None
    category_names: list[str] = field(default_factory=list)
    # Weighted activity per category over these users, (len(category_names),) float64: what the
    # affinity columns are chosen by (:func:`choose_affinity_columns`); None when unknown.
    category_activity: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]

    def add_column(self, name: str, values: np.ndarray) -> None:
        """Append (or replace) one column."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, 1)
        if name in self.columns:
            self.values[:, self.columns.index(name)] = values[:, 0]
            return
        self.columns.append(name)
        self.values = np.hstack([self.values, values])


def category_medians(categories: np.ndarray, prices: np.ndarray, n_categories: int) -> np.ndarray:
    """Median catalogue price of each category (NaN where no item has a price).

    ``categories``/``prices`` describe the catalogue, one row per item.
    """
    medians = np.full(n_categories, np.nan)
    known = (categories >= 0) & np.isfinite(prices)
    for index in np.unique(categories[known]):
        medians[index] = float(np.median(prices[known & (categories == index)]))
    return medians


def compute_features(
    events: ProfileEvents,
    *,
    now: float,
    category_median_price: np.ndarray | None = None,
    event_weights: Mapping[str, float] | None = None,
    affinity_columns: Sequence[str] | None = None,
    max_affinity_columns: int = 8,
    top_categories: int = 3,
) -> FeatureTable:
    """Compute every base feature and the category affinities of ``events.n_users`` users.

    Parameters
    ----------
    events : the event arrays; users without any event get NaN/zero rows and a note.
    now : unix seconds the recencies are measured from.
    category_median_price : (n_categories,) median price per category index (for price_level).
    event_weights : weight of each event type in the affinities (views 1, purchases 5, ...).
    affinity_columns : category names that get an ``affinity:<name>`` column; None picks the
        ``max_affinity_columns`` categories with the most weighted activity.
    top_categories : how many top categories to list per user.
    """
    n = events.n_users
    users = np.asarray(events.users, dtype=np.int64)
    types = np.asarray(events.event_types, dtype=object)
    ts = np.asarray(events.timestamps, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    notes: list[list[dict[str, Any]]] = [[] for _ in range(n)]

    count = np.bincount(users, minlength=n).astype(np.float64)
    is_view = types == "view"
    is_cart = types == "add_to_cart"
    is_purchase = types == "purchase"
    views = np.bincount(users[is_view], minlength=n).astype(np.float64)
    carts = np.bincount(users[is_cart], minlength=n).astype(np.float64)
    purchases = np.bincount(users[is_purchase], minlength=n).astype(np.float64)
    has_events = count > 0

    last = np.full(n, -np.inf)
    np.maximum.at(last, users, ts)
    first = np.full(n, np.inf)
    np.minimum.at(first, users, ts)
    last_purchase = np.full(n, -np.inf)
    np.maximum.at(last_purchase, users[is_purchase], ts[is_purchase])
    out["recency_days"] = np.where(has_events, (now - last) / SECONDS_PER_DAY, np.nan)
    out["purchase_recency_days"] = np.where(purchases > 0, (now - last_purchase) / SECONDS_PER_DAY, np.nan)
    out["tenure_days"] = np.where(has_events, (now - first) / SECONDS_PER_DAY, np.nan)

    # Sessions: sort by (user, time); a new user or a long pause opens a session.
    order = np.lexsort((ts, users))
    su, st = users[order], ts[order]
    new_user = np.ones(len(su), dtype=bool)
    new_user[1:] = su[1:] != su[:-1]
    gap = np.zeros(len(su))
    gap[1:] = np.diff(st)
    new_session = new_user | (gap > SESSION_GAP_SECONDS)
    session_id = np.cumsum(new_session) - 1
    sessions = np.bincount(su[new_session], minlength=n).astype(np.float64)
    out["sessions"] = sessions
    out["events_per_session"] = np.where(sessions > 0, count / np.maximum(sessions, 1), np.nan)
    # Peak events in one clock minute: runs of equal (user, minute) in the sorted order.
    minute = np.floor(st / 60.0)
    new_run = new_user.copy()
    new_run[1:] |= minute[1:] != minute[:-1]
    run_id = np.cumsum(new_run) - 1
    run_sizes = np.bincount(run_id).astype(np.float64) if len(run_id) else np.zeros(0)
    peak = np.zeros(n)
    if len(run_id):
        np.maximum.at(peak, su[new_run], run_sizes)
    out["peak_events_per_minute"] = peak
    day = np.floor(st / SECONDS_PER_DAY)
    new_day = new_user.copy()
    new_day[1:] |= day[1:] != day[:-1]
    out["active_days"] = np.bincount(su[new_day], minlength=n).astype(np.float64)

    # Orders = sessions containing a purchase (several items bought together are one order).
    purchase_sorted = is_purchase[order]
    order_sessions = np.unique(session_id[purchase_sorted])
    first_event_of_session = np.flatnonzero(new_session)
    frequency = np.bincount(su[first_event_of_session[order_sessions]], minlength=n).astype(np.float64)
    out["frequency"] = frequency

    # Money: the event's value, else catalogue price x quantity, else unknown.
    values = np.asarray(events.values, dtype=np.float64)
    prices = np.asarray(events.prices, dtype=np.float64)
    quantities = np.asarray(events.quantities, dtype=np.float64)
    money = np.where(np.isfinite(values), values, prices * quantities)
    known_money = is_purchase & np.isfinite(money)
    monetary = np.bincount(users[known_money], weights=money[known_money], minlength=n)
    known_purchases = np.bincount(users[known_money], minlength=n)
    unknown_purchases = purchases - known_purchases
    monetary = np.where((purchases > 0) & (known_purchases == 0), np.nan, monetary)
    out["monetary"] = monetary
    out["avg_order_value"] = np.where(frequency > 0, monetary / np.maximum(frequency, 1), np.nan)

    out["events"] = count
    out["views"] = views
    out["carts"] = carts
    out["purchases"] = purchases
    out["conversion_rate"] = np.where(views > 0, np.minimum(purchases / np.maximum(views, 1), 1.0), np.nan)
    out["cart_abandonment_rate"] = np.where(
        carts > 0, np.clip((carts - purchases) / np.maximum(carts, 1), 0.0, 1.0), np.nan
    )

    categories = np.asarray(events.categories, dtype=np.int64)
    n_categories = len(events.category_names)
    if category_median_price is not None and n_categories:
        median = np.asarray(category_median_price, dtype=np.float64)
        has_cat = categories >= 0
        ratio = np.full(len(users), np.nan)
        ratio[has_cat] = prices[has_cat] / median[categories[has_cat]]
        priced = np.isfinite(ratio) & (types != "search")
        ratio_sum = np.bincount(users[priced], weights=ratio[priced], minlength=n)
        ratio_count = np.bincount(users[priced], minlength=n)
        out["price_level"] = np.where(ratio_count > 0, ratio_sum / np.maximum(ratio_count, 1), np.nan)
    else:
        out["price_level"] = np.full(n, np.nan)
    bot = np.asarray(events.is_bot, dtype=bool)
    out["bot_event_share"] = np.where(
        has_events, np.bincount(users[bot], minlength=n) / np.maximum(count, 1), np.nan
    )

    columns = list(BASE_FEATURES)
    matrix = np.column_stack([out[name] for name in columns]) if n else np.zeros((0, len(columns)))

    # Category affinities: share of the user's weighted activity per category.
    weights_by_type = dict(event_weights or {})
    # One lookup per distinct event type, not per event.
    type_codes, type_names = pd.factorize(types)
    type_weights = np.array([float(weights_by_type.get(t, 1.0)) for t in type_names] + [1.0])
    weight = type_weights[type_codes] if len(types) else np.zeros(0)
    with_cat = (categories >= 0) & (weight > 0)
    top_lists: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    affinity_names: list[str] = []
    all_shares = np.zeros((n, n_categories))
    activity = np.zeros(n_categories)
    if n_categories and with_cat.any():
        counts = sparse.coo_matrix(
            (weight[with_cat], (users[with_cat], categories[with_cat])), shape=(n, n_categories)
        ).tocsr()
        totals = np.asarray(counts.sum(axis=1)).ravel()
        activity = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
        if affinity_columns is None:
            affinity_names = choose_affinity_columns(activity, events.category_names, max_affinity_columns)
        else:
            affinity_names = list(affinity_columns)
        index_of = {name: i for i, name in enumerate(events.category_names)}
        safe_totals = np.where(totals > 0, totals, 1.0)
        shares = sparse.diags(1.0 / safe_totals) @ counts
        affinity = np.zeros((n, len(affinity_names)))
        for j, name in enumerate(affinity_names):
            if name in index_of:
                affinity[:, j] = shares[:, index_of[name]].toarray().ravel()
        matrix = np.hstack([matrix, affinity])
        shares = shares.tocsr()
        # Segments use unweighted shares (every event with a category counts once): with a
        # purchase weighing 5 views, one purchase decides a short history's mix, and the
        # planted types were recovered less well (measured, see segments.SegmentSpace).
        has_category = categories >= 0
        plain = sparse.coo_matrix(
            (np.ones(int(has_category.sum())), (users[has_category], categories[has_category])),
            shape=(n, n_categories),
        ).tocsr()
        plain_totals = np.asarray(plain.sum(axis=1)).ravel()
        all_shares = (sparse.diags(1.0 / np.where(plain_totals > 0, plain_totals, 1.0)) @ plain).toarray()
        weighted_shares = shares.toarray()
        # Top categories of every user at once; zero shares are not listed.
        best = np.argsort(-weighted_shares, axis=1, kind="stable")[:, :top_categories]
        best_shares = np.round(np.take_along_axis(weighted_shares, best, axis=1), 4).tolist()
        names = events.category_names
        for row in np.flatnonzero(totals > 0).tolist():
            pairs = zip(best[row].tolist(), best_shares[row], strict=True)
            top_lists[row] = [(names[c], share) for c, share in pairs if share > 0]
    elif affinity_columns:
        affinity_names = list(affinity_columns)
        matrix = np.hstack([matrix, np.zeros((n, len(affinity_names)))])
    columns += [AFFINITY_PREFIX + name for name in affinity_names]

    for i in range(n):
        if not has_events[i]:
            notes[i].append(note("no_events"))
            continue
        if purchases[i] == 0:
            notes[i].append(note("no_purchases"))
        elif unknown_purchases[i] > 0:
            if math.isnan(monetary[i]):
                notes[i].append(note("no_priced_purchases", purchases=int(purchases[i])))
            else:
                notes[i].append(note("unpriced_purchases", count=int(unknown_purchases[i])))
        if views[i] == 0:
            notes[i].append(note("no_views"))
        if math.isnan(out["price_level"][i]):
            notes[i].append(note("no_price_level"))
        if not top_lists[i]:
            notes[i].append(note("no_category_activity"))
    return FeatureTable(
        columns=columns,
        values=matrix,
        top_categories=top_lists,
        notes=notes,
        category_shares=all_shares,
        category_names=list(events.category_names),
        category_activity=activity,
    )


def choose_affinity_columns(activity: np.ndarray, category_names: Sequence[str], limit: int) -> list[str]:
    """The ``limit`` categories with the most weighted activity (ties: catalogue order); none idle.

    Parameters
    ----------
    activity : (n_categories,) float64, weighted events per category (``FeatureTable.category_activity``,
        or its sum over several tables of users).
    """
    ranked = [int(i) for i in np.argsort(-np.asarray(activity), kind="stable") if activity[i] > 0]
    return [category_names[i] for i in ranked[:limit]]


def select_affinity_columns(table: FeatureTable, names: Sequence[str]) -> None:
    """Keep exactly the affinity columns ``names`` (in that order, right after the base features).

    A category without a column in ``table`` had no activity among its users: its affinity is 0
    for every one of them (what :func:`compute_features` gives such a category).
    """
    affinity = [AFFINITY_PREFIX + name for name in names]
    index = {column: j for j, column in enumerate(table.columns)}
    rest = [c for c in table.columns[len(BASE_FEATURES) :] if not c.startswith(AFFINITY_PREFIX)]
    columns = list(table.columns[: len(BASE_FEATURES)]) + affinity + rest
    values = np.zeros((len(table.values), len(columns)))
    for j, column in enumerate(columns):
        if column in index:
            values[:, j] = table.values[:, index[column]]
    table.columns, table.values = columns, values


def heuristic_propensity(table: FeatureTable) -> np.ndarray:
    """A transparent purchase-propensity estimate used when no trained model is active.

    ``sigmoid(-2 + 0.9·log1p(carts) + 1.1·log1p(orders) + 0.3·log1p(views) - recency_days/30)``:
    recent carts and past orders raise it, inactivity lowers it. Users without events get 0.
    """
    carts = np.nan_to_num(table.column("carts"))
    orders = np.nan_to_num(table.column("frequency"))
    views = np.nan_to_num(table.column("views"))
    recency = table.column("recency_days")
    score = -2.0 + 0.9 * np.log1p(carts) + 1.1 * np.log1p(orders) + 0.3 * np.log1p(views)
    score = score - np.nan_to_num(recency, nan=365.0) / 30.0
    result = 1.0 / (1.0 + np.exp(-score))
    return np.where(np.isnan(recency), 0.0, result)


HEURISTIC_PROPENSITY_FORMULA = (
    "sigmoid(-2 + 0.9*log1p(carts) + 1.1*log1p(orders) + 0.3*log1p(views) - recency_days/30)"
)
