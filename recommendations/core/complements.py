"""Complements: what shoppers buy with an item, or soon after buying it (no views involved).

"Similar" items come from views (co-visitation, embeddings) and are mostly substitutes: two phones
a shopper compared. What goes with an item in a cart is learnt from buying alone, from two signals:

- **together**: two items carted or bought by one shopper within ``session_gap_hours`` (one order,
  one cart); symmetric.
- **next purchase**: item ``b`` carted or bought ``session_gap_hours`` to ``horizon_days`` after
  a *purchase* of ``a`` by the same shopper; directed ``a -> b``. Only a purchase starts it: what
  follows an abandoned cart is more often the alternative the shopper chose instead.

A cart event later taken back (``remove_from_cart`` of the same item by the same shopper) does not
count: comparing two phones in the cart and removing one is a substitute signal. Each shopper
counts once per pair (with the strongest of their occurrences, a pair being worth its weaker end),
so one heavy buyer cannot make a pair; the counts are then cosine-normalised by the items' buyer
counts, as co-visitation is.

Within one group (the shop's category, given by the caller) buying both is not enough: shoppers who
buy a phone every few weeks buy "two phones" without the second going with the first. A pair of one
group is kept only when clearly more shoppers bought both than bought one *instead of* the other
(viewed it in the session where they bought the other, and never bought it): a one-sided binomial
test of "bought both" against "bought instead" as a fair coin, at ``substitute_level``. Coffee
beans after a coffee machine pass (8 shoppers bought both, 3 one instead of the other); two
cameras do not (3 against 2, nor 2 against 0: too few to tell). Pairs across groups need no test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import betainc

from recommendations.core.candidates import _top_k_rows
from recommendations.core.dataset import EventLog

DAY = 86400.0
#: what one buy event of each type is worth in a pair (a pair is worth its weaker end)
DEFAULT_BUY_WEIGHTS: dict[str, float] = {"purchase": 1.0, "add_to_cart": 0.5}


@dataclass
class Complements:
    """Directed item-to-item complement scores learnt from carts and purchases.

    Attributes
    ----------
    item_ids : list of str
        Item keys; row/column ``j`` of ``matrix`` is ``item_ids[j]``.
    matrix : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        ``matrix[a, b]``: how strongly ``b`` is bought with or after ``a`` (top ``neighbours`` per row,
        zero diagonal).
    support : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        The shopper counts (weighted) behind each kept score, for a caller's own threshold.
    substitutes : int
        Same-group pairs dropped because shoppers bought one instead of the other.
    """

    item_ids: list[str]
    matrix: sp.csr_matrix
    support: sp.csr_matrix
    substitutes: int = 0

    def __post_init__(self) -> None:
        self._index = {k: j for j, k in enumerate(self.item_ids)}

    def related(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """The items most often bought with or after ``item``, best first; unknown item -> []."""
        j = self._index.get(str(item))
        if j is None or n <= 0:
            return []
        s, e = self.matrix.indptr[j], self.matrix.indptr[j + 1]
        cols, vals = self.matrix.indices[s:e], self.matrix.data[s:e]
        order = np.lexsort((cols, -vals))[:n]
        return [(self.item_ids[cols[o]], float(vals[o])) for o in order if vals[o] > 0]


@dataclass
class _Events:
    """Some events of a log as codes, sorted by (shopper, time)."""

    owners: np.ndarray  # int64 shopper codes
    keys: np.ndarray  # item keys (str objects)
    types: np.ndarray  # event type names
    times: np.ndarray  # float64 seconds

    @classmethod
    def of(cls, log: EventLog, keep: np.ndarray) -> _Events:
        rows = np.flatnonzero(keep)
        codes: dict[str, int] = {}
        owners = np.fromiter(
            (codes.setdefault(user, len(codes)) for user in log.users[rows]), dtype=np.int64, count=len(rows)
        )
        order = np.lexsort((log.timestamps[rows], owners))
        rows = rows[order]
        return cls(owners[order], log.items[rows], log.event_types[rows], log.timestamps[rows])


def _of_types(log: EventLog, types: Iterable[str]) -> np.ndarray:
    """Mask of the events of these types that are not bot-flagged."""
    mask = np.zeros(len(log), dtype=bool)
    for name in types:
        mask |= log.event_types == name
    if log.is_bot is not None:
        mask &= ~log.is_bot
    return mask


def _buy_events(log: EventLog, weights: Mapping[str, float]) -> _Events:
    """Cart and purchase events that count; taken-back carts dropped."""
    keep = _of_types(log, [t for t, w in weights.items() if w > 0])
    removed = _of_types(log, ["remove_from_cart"])
    if removed.any() and keep.any():
        # the newest removal per (shopper, item); a cart event at or before it was taken back
        last_removal: dict[tuple[str, str], float] = {}
        for user, item, ts in zip(
            log.users[removed], log.items[removed], log.timestamps[removed].tolist(), strict=True
        ):
            key = (user, item)
            last_removal[key] = max(ts, last_removal.get(key, ts))
        carts = np.flatnonzero(keep & (log.event_types == "add_to_cart"))
        for i in carts.tolist():
            ts = last_removal.get((log.users[i], log.items[i]))
            if ts is not None and log.timestamps[i] <= ts:
                keep[i] = False
    return _Events.of(log, keep)


def complements(
    log: EventLog,
    *,
    session_gap_hours: float = 24.0,
    horizon_days: float = 14.0,
    neighbours: int = 100,
    max_span: int = 50,
    buy_weights: Mapping[str, float] | None = None,
    groups: Mapping[str, str] | None = None,
    min_support: float = 2.0,
    substitute_level: float = 0.2,
) -> Complements:
    """Learn complement relations from the carts and purchases of ``log`` (views are ignored).

    Parameters
    ----------
    log : EventLog
        Any order; bot-flagged events are dropped.
    session_gap_hours : float
        Two buys at most this far apart are "together" (one order or cart).
    horizon_days : float
        A buy at most this long after a purchase is its "next purchase".
    neighbours : int
        Related items kept per item.
    max_span : int
        At most this many later buy events of a shopper are paired with each buy (a bound on the
        work for shoppers with very long buying histories).
    buy_weights : mapping of str to float, optional
        Weight of each buy event type (:data:`DEFAULT_BUY_WEIGHTS`); a pair is worth its weaker end.
    groups : mapping of str to str, optional
        Item key -> group (category); pairs within a group must pass the substitution test.
    min_support : float
        Shoppers (weighted) a pair needs at least: one shopper who bought a camera and a book
        is an anecdote, not something to tell the next shopper.
    substitute_level : float
        The substitution test's level: a same-group pair is kept when "bought both" this
        unlikely or less under "both or instead, evens" (lower keeps fewer pairs).

    Returns
    -------
    Complements
        Over the items with at least one counted buy.
    """
    weights = dict(DEFAULT_BUY_WEIGHTS if buy_weights is None else buy_weights)
    buys = _buy_events(log, weights)
    item_ids = sorted(set(buys.keys.tolist()))
    n = len(item_ids)
    if n < 2:
        empty = sp.csr_matrix((n, n), dtype=np.float32)
        return Complements(item_ids, empty, empty.copy())
    index = {key: j for j, key in enumerate(item_ids)}
    items = np.fromiter((index[k] for k in buys.keys), dtype=np.int64, count=len(buys.keys))
    owners, times = buys.owners, buys.times
    is_purchase = buys.types == "purchase"
    w = np.array([weights.get(t, 0.0) for t in buys.types], dtype=np.float64)
    gap, horizon = session_gap_hours * 3600.0, horizon_days * DAY
    sources, targets, values, who = [], [], [], []
    for offset in range(1, min(max_span, len(items) - 1) + 1):
        first, later = slice(None, -offset), slice(offset, None)
        dt = times[later] - times[first]
        same_owner = owners[later] == owners[first]
        if not same_owner.any():
            break  # no shopper has more than ``offset`` buys
        same = same_owner & (items[later] != items[first])
        pair_w = np.minimum(w[first], w[later])
        together = same & (dt <= gap)
        after = same & (dt > gap) & (dt <= horizon) & is_purchase[first]
        a, b = items[first], items[later]
        # together counts both ways; a next purchase only from the first item to the later one
        sources += [a[together], b[together], a[after]]
        targets += [b[together], a[together], b[after]]
        values += [pair_w[together], pair_w[together], pair_w[after]]
        who += [owners[first][together], owners[first][together], owners[first][after]]
    src, dst, val, usr = (np.concatenate(x) if x else np.zeros(0) for x in (sources, targets, values, who))
    src, dst, usr = src.astype(np.int64), dst.astype(np.int64), usr.astype(np.int64)
    if len(src):
        # one vote per shopper and pair: the strongest of their occurrences
        order = np.lexsort((-val, dst, src, usr))
        src, dst, val, usr = src[order], dst[order], val[order], usr[order]
        first_of_group = np.ones(len(src), dtype=bool)
        first_of_group[1:] = (usr[1:] != usr[:-1]) | (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
        src, dst, val = src[first_of_group], dst[first_of_group], val[first_of_group]
    support = sp.csr_matrix((val, (src, dst)), shape=(n, n), dtype=np.float64)
    support.sum_duplicates()
    support.data[support.data < min_support] = 0.0
    support.eliminate_zeros()
    dropped = 0
    if groups:
        support, dropped = _drop_substitutes(support, log, item_ids, groups, gap, substitute_level)
    # buyers per item: distinct shoppers with a counted buy of it
    pairs = np.unique(np.stack([owners, items], axis=1), axis=0)
    buyers = np.bincount(pairs[:, 1], minlength=n).astype(np.float64)
    norm = 1.0 / np.sqrt(np.maximum(buyers, 1.0))
    scores = (sp.diags(norm) @ support @ sp.diags(norm)).tocsr()
    scores = _top_k_rows(scores, neighbours)
    kept = support.multiply(scores > 0).tocsr().astype(np.float32)
    return Complements(item_ids, scores, kept, dropped)


def _drop_substitutes(
    support: sp.csr_matrix,
    log: EventLog,
    item_ids: list[str],
    groups: Mapping[str, str],
    gap: float,
    level: float,
) -> tuple[sp.csr_matrix, int]:
    """Drop the same-group pairs not clearly bought together more than instead; returns the count."""
    group_of = [groups.get(key) for key in item_ids]
    coo = support.tocoo()
    same = np.array(
        [
            group_of[a] is not None and group_of[a] == group_of[b]
            for a, b in zip(coo.row, coo.col, strict=True)
        ],
        dtype=bool,
    )
    if not same.any():
        return support, 0
    instead = _bought_instead(log, {key: j for j, key in enumerate(item_ids)}, len(item_ids), gap)
    # bought one instead of the other, either way round
    either = (
        np.asarray(instead[coo.row[same], coo.col[same]]).ravel()
        + np.asarray(instead[coo.col[same], coo.row[same]]).ravel()
    )
    veto = np.zeros(len(coo.row), dtype=bool)
    # P(X >= both) for X ~ Binomial(both + instead, 1/2), for weighted (non-integer) counts too
    chance = betainc(coo.data[same], either + 1.0, 0.5)
    veto[np.flatnonzero(same)] = chance >= level
    kept = sp.csr_matrix((coo.data[~veto], (coo.row[~veto], coo.col[~veto])), shape=support.shape)
    return kept, int(veto.sum())


def _bought_instead(log: EventLog, index: Mapping[str, int], n: int, gap: float) -> sp.csr_matrix:
    """``m[a, b]``: sessions where a shopper viewed ``a``, bought ``b``, and never bought ``a``."""
    events = _Events.of(log, _of_types(log, ["view", "click", "purchase"]))
    items = np.fromiter((index.get(k, -1) for k in events.keys), dtype=np.int64, count=len(events.keys))
    known = items >= 0
    owners, times, items = events.owners[known], events.times[known], items[known]
    if not len(items):
        return sp.csr_matrix((n, n), dtype=np.float64)
    bought = (events.types == "purchase")[known]
    # sessions: a new one for each shopper, and after a pause longer than the gap
    starts = np.ones(len(items), dtype=bool)
    starts[1:] = (owners[1:] != owners[:-1]) | (np.diff(times) > gap)
    session = np.cumsum(starts) - 1
    pair = owners * n + items
    looked = ~bought & ~np.isin(pair, pair[bought])
    sessions = int(session[-1]) + 1
    viewed = sp.csr_matrix(
        (np.ones(int(looked.sum())), (session[looked], items[looked])), shape=(sessions, n)
    )
    purchased = sp.csr_matrix(
        (np.ones(int(bought.sum())), (session[bought], items[bought])), shape=(sessions, n)
    )
    for m in (viewed, purchased):
        m.sum_duplicates()
        m.data[:] = 1.0  # once per session
    return (viewed.T @ purchased).tocsr()
