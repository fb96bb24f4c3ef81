"""Candidate sources that need no network: popularity, trending, co-visitation, transitions, own history.

Functions on :class:`EventLog` take and return item keys; the ``*_matrix`` builders work on dense
:class:`Sequences` indices (column ``j`` is item index ``j + 1``) and are what the recommender blends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommendations.core.config import DEFAULT_EVENT_WEIGHTS
from recommendations.core.dataset import EVENT_TYPES, EventLog, ItemIndex, Sequences
from recommendations.core.sequences import build_sequences, clean_log

DAY = 86400.0


def popularity_scores(
    log: EventLog, event_weights: Mapping[str, float] | None = None, since: float | None = None
) -> dict[str, float]:
    """Sum of event weights per item (bot events excluded), optionally only events at or after ``since``."""
    w = event_weights or DEFAULT_EVENT_WEIGHTS
    log = clean_log(log, w)
    out: dict[str, float] = {}
    for item, etype, ts in zip(log.items, log.event_types, log.timestamps, strict=True):
        if since is None or ts >= since:
            out[item] = out.get(item, 0.0) + w.get(etype, 0.0)
    return out


def trending_scores(
    log: EventLog, now: float, half_life_days: float = 7.0, event_weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Event weights decayed exponentially with age: ``sum w * 0.5 ** ((now - ts) / half_life)``.

    Events after ``now`` are ignored (no look-ahead).
    """
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    w = event_weights or DEFAULT_EVENT_WEIGHTS
    log = clean_log(log, w)
    keep = log.timestamps <= now
    ages = (now - log.timestamps[keep]) / (half_life_days * DAY)
    weights = np.array([w.get(t, 0.0) for t in log.event_types[keep]], dtype=np.float64) * np.power(0.5, ages)
    out: dict[str, float] = {}
    for item, value in zip(log.items[keep], weights, strict=True):
        out[item] = out.get(item, 0.0) + float(value)
    return out


def _flatten(seqs: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not len(seqs):
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), e
    items = np.concatenate(seqs.items) if seqs.n_events else np.zeros(0, dtype=np.int64)
    times = np.concatenate(seqs.times) if seqs.n_events else np.zeros(0)
    types = np.concatenate(seqs.types) if seqs.n_events else np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs.items])
    return items, times, owner, types


def _top_k_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row."""
    m = m.tocsr()
    m.sum_duplicates()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        s, e = m.indptr[r], m.indptr[r + 1]
        if e == s:
            continue
        v = m.data[s:e]
        c = m.indices[s:e]
        if e - s > k:
            keep = np.argpartition(-v, k)[:k]
            v, c = v[keep], c[keep]
        rows.append(np.full(len(v), r))
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csr_matrix(m.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape
    )


def covisitation_matrix(
    seqs: Sequences,
    n_items: int,
    *,
    window: int = 5,
    session_gap_hours: float = 24.0,
    neighbours: int = 100,
    types: Mapping[int, float] | None = None,
) -> sp.csr_matrix:
    """Symmetric item-item co-visitation within sessions, cosine-normalised.

    Pairs at most ``window`` steps apart in one shopper's sequence and at most ``session_gap_hours``
    apart count ``1 / distance`` each (times the type weights of both ends when ``types`` maps type
    index -> weight).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        Row/column ``j`` is item index ``j + 1``; top ``neighbours`` per row; zero diagonal.
    """
    items, times, owner, tps = _flatten(seqs)
    gap = session_gap_hours * 3600.0
    tw = np.array([(types or {}).get(int(t), 1.0) for t in range(max(tps.max(initial=0) + 1, 1))])
    rows, cols, vals = [], [], []
    for o in range(1, window + 1):
        if len(items) <= o:
            break
        ok = (owner[o:] == owner[:-o]) & (times[o:] - times[:-o] <= gap) & (items[o:] != items[:-o])
        a, b = items[:-o][ok] - 1, items[o:][ok] - 1
        v = (tw[tps[:-o][ok]] * tw[tps[o:][ok]]) ** 0.5 / o
        rows += [a, b]
        cols += [b, a]
        vals += [v, v]
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float64,
    )
    counts = np.bincount(items - 1, minlength=n_items).astype(np.float64) if len(items) else np.zeros(n_items)
    norm = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    m = sp.diags(norm) @ m @ sp.diags(norm)
    return _top_k_rows(m, neighbours)


def itemknn_matrix(seqs: Sequences, n_items: int, *, neighbours: int = 100) -> sp.csr_matrix:
    """Item-item cosine similarity of the shoppers' item sets (item-kNN), top ``neighbours`` per row.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        Zero diagonal; row/column ``j`` is item index ``j + 1``.
    """
    rows = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs.items])
    cols = np.concatenate(seqs.items) - 1 if seqs.n_events else np.zeros(0, dtype=np.int64)
    x = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(seqs), n_items))
    x.data[:] = 1.0  # distinct (shopper, item) pairs
    x.sum_duplicates()
    x.data[:] = 1.0
    gram = (x.T @ x).tocsr()
    gram.setdiag(0.0)
    gram.eliminate_zeros()
    norm = 1.0 / np.sqrt(np.maximum(np.asarray(x.sum(0)).ravel(), 1.0))
    sim = sp.diags(norm) @ gram @ sp.diags(norm)
    return _top_k_rows(sim, neighbours)


def transition_matrix(seqs: Sequences, n_items: int, *, neighbours: int = 100) -> sp.csr_matrix:
    """Row-normalised counts of item ``j`` directly following item ``i`` (first-order Markov chain).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), float32
    """
    items, _, owner, _ = _flatten(seqs)
    if len(items) < 2:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    ok = owner[1:] == owner[:-1]
    m = sp.csr_matrix(
        (np.ones(int(ok.sum())), (items[:-1][ok] - 1, items[1:][ok] - 1)),
        shape=(n_items, n_items),
        dtype=np.float64,
    )
    m = _top_k_rows(m, neighbours)
    sums = np.asarray(m.sum(1)).ravel()
    return (sp.diags(1.0 / np.maximum(sums, 1e-12)) @ m).astype(np.float32).tocsr()


def history_weights(seqs: Sequences, n_items: int, *, last: int = 20, decay: float = 0.8) -> sp.csr_matrix:
    """Recency-weighted bag of each shopper's recent items: ``decay ** age`` (age 0 = newest), max per item.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_shoppers, n_items), float32
    """
    rows, cols, vals = [], [], []
    for r, s in enumerate(seqs.items):
        tail = s[-last:][::-1]
        if not len(tail):
            continue
        ages = np.arange(len(tail))
        # first occurrence in the reversed tail is the newest: keep the largest weight per item
        _, first = np.unique(tail, return_index=True)
        rows.append(np.full(len(first), r))
        cols.append(tail[first] - 1)
        vals.append(decay ** ages[first])
    if not rows:
        return sp.csr_matrix((len(seqs), n_items), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(seqs), n_items),
        dtype=np.float32,
    )


def recent_history_scores(seqs: Sequences, n_items: int, *, decay: float = 0.8) -> np.ndarray:
    """ "Recently viewed" scores for repeat-friendly modes: the shopper's own items, newest highest.

    Returns
    -------
    ndarray of shape (n_shoppers, n_items), float32
        ``decay ** age`` of each item's newest occurrence (all items of the history), 0 elsewhere.
    """
    longest = max((len(s) for s in seqs.items), default=1)
    dense: np.ndarray = history_weights(seqs, n_items, last=max(longest, 1), decay=decay).toarray()
    return dense


@dataclass
class CoVisitation:
    """Item-to-item relations learnt from an event log.

    Attributes
    ----------
    item_ids : list of str
        Item keys; row/column ``j`` of the matrices is ``item_ids[j]``.
    similar_matrix : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        Co-visitation within sessions (cosine-normalised).
    together_matrix : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        Co-purchase (and add-to-cart) within sessions.
    """

    item_ids: list[str]
    similar_matrix: sp.csr_matrix
    together_matrix: sp.csr_matrix

    def __post_init__(self) -> None:
        self._index = {k: j for j, k in enumerate(self.item_ids)}

    def _row(self, m: sp.csr_matrix, item: str, n: int) -> list[tuple[str, float]]:
        j = self._index.get(str(item))
        if j is None or n <= 0:
            return []
        s, e = m.indptr[j], m.indptr[j + 1]
        cols, vals = m.indices[s:e], m.data[s:e]
        order = np.lexsort((cols, -vals))[:n]
        return [(self.item_ids[cols[o]], float(vals[o])) for o in order if vals[o] > 0]

    def similar(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Items most often visited near ``item`` (best first); unknown item -> []."""
        return self._row(self.similar_matrix, item, n)

    def bought_together(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Items most often bought (or carted) in the same session as ``item``; unknown item -> []."""
        return self._row(self.together_matrix, item, n)


BUY_TYPES = ("add_to_cart", "purchase")


def covisitation(
    log: EventLog,
    *,
    window: int = 5,
    session_gap_hours: float = 24.0,
    neighbours: int = 100,
    event_weights: Mapping[str, float] | None = None,
    index: ItemIndex | None = None,
) -> CoVisitation:
    """Co-visitation and co-purchase relations of every item in ``log`` (or of ``index``'s items)."""
    w = dict(event_weights or DEFAULT_EVENT_WEIGHTS)
    clean = clean_log(log, w)
    if index is None:
        index = ItemIndex(sorted(set(clean.items)))
    type_w = {i + 1: w.get(t, 0.0) for i, t in enumerate(EVENT_TYPES)}
    seqs = build_sequences(clean, index, w)
    sim = covisitation_matrix(
        seqs,
        len(index),
        window=window,
        session_gap_hours=session_gap_hours,
        neighbours=neighbours,
        types=type_w,
    )
    together = bought_together_matrix(
        clean, index, window=window, session_gap_hours=session_gap_hours, neighbours=neighbours
    )
    return CoVisitation(list(index.item_ids), sim, together)


def bought_together_matrix(
    clean: EventLog, index: ItemIndex, *, window: int, session_gap_hours: float, neighbours: int
) -> sp.csr_matrix:
    """Co-occurrence of items carted or bought (``BUY_TYPES``) in the same session, (n_items, n_items).

    The window is at least 10 steps: a basket fills over a session, not over the few steps the
    co-visitation window looks at.
    """
    buy_w = {t: (1.0 if t in BUY_TYPES else 0.0) for t in EVENT_TYPES}
    buys = build_sequences(clean_log(clean, buy_w), index, buy_w)
    return covisitation_matrix(
        buys, len(index), window=max(window, 10), session_gap_hours=session_gap_hours, neighbours=neighbours
    )
