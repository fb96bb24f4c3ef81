"""Vectorised batch inputs for scoring many shoppers at once (the precompute path).

The serving path encodes one history at a time (``histories_to_sequences``, ``history_weights``,
``pad_batch``); these functions compute the same arrays for a whole batch from flat columns with
NumPy, without a Python loop per event. Each is tested against its straightforward counterpart.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from recommendations.core.dataset import EVENT_TYPES, Sequences
from recommendations.core.sequences import gap_bucket_of

__all__ = ["RecencyIndex", "encode_columns", "padded_inputs", "recency_weights", "recent_distinct"]


def _starts(owners: np.ndarray) -> np.ndarray:
    """True where a new owner begins in an array sorted by owner."""
    start = np.ones(len(owners), dtype=bool)
    start[1:] = owners[1:] != owners[:-1]
    return start


def encode_columns(
    owners: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    stamps: np.ndarray,
    n_rows: int,
    event_weights: Mapping[str, float],
    max_length: int | None = None,
) -> Sequences:
    """Flat events to :class:`Sequences`, exactly as ``histories_to_sequences`` encodes histories.

    Parameters
    ----------
    owners : ndarray of shape (n,), int64
        Row (shopper) of each event, ``0 <= owner < n_rows``; sorted ascending, and within an owner
        the events are oldest first (ties in the order the history lists them).
    items : ndarray of shape (n,), int64
        Dense item index (``>= 1``), 0 for an item the model does not know (skipped).
    types : ndarray of shape (n,), int64
        Event-type index (``TYPE_INDEX``), 0 for an unknown type (skipped).
    stamps : ndarray of shape (n,), float64
        Unix seconds.
    n_rows : int
    event_weights : mapping of str to float
        Types of weight <= 0 are skipped; repeated consecutive items collapse into one step that
        keeps the first time and the type of the highest weight (the earliest on equal weights).
    max_length : int, optional
        Keep the newest ``max_length`` steps.

    Returns
    -------
    Sequences
        ``n_rows`` sequences (possibly empty), users named ``"0".."n_rows-1"``.
    """
    weight_of_type = np.array([0.0] + [float(event_weights.get(t, 0.0)) for t in EVENT_TYPES])
    owners = np.asarray(owners, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    types = np.asarray(types, dtype=np.int64)
    stamps = np.asarray(stamps, dtype=np.float64)
    weights = weight_of_type[types]
    keep = (items > 0) & (types > 0) & (weights > 0)
    owners, items, types, stamps, weights = (a[keep] for a in (owners, items, types, stamps, weights))
    # one step per run of the same item: the run's first time, the type of its highest weight
    new_run = _starts(owners)
    new_run[1:] |= items[1:] != items[:-1]
    run_starts = np.flatnonzero(new_run)
    if len(run_starts):
        run_of = np.cumsum(new_run) - 1
        best = np.maximum.reduceat(weights, run_starts)
        positions = np.arange(len(weights))
        winner = np.minimum.reduceat(np.where(weights == best[run_of], positions, len(weights)), run_starts)
        run_types = types[winner]
    else:
        run_types = types[:0]
    run_owners, run_items, run_stamps = owners[run_starts], items[run_starts], stamps[run_starts]
    counts = np.bincount(run_owners, minlength=n_rows)
    if max_length:
        # newest max_length steps per owner: rank of each step counted from its owner's end
        ends = np.cumsum(counts)
        from_end = ends[run_owners] - np.arange(len(run_owners))
        tail = from_end <= max_length
        run_owners, run_items, run_types, run_stamps = (
            a[tail] for a in (run_owners, run_items, run_types, run_stamps)
        )
        counts = np.minimum(counts, max_length)
    bounds = np.cumsum(counts)[:-1]
    return Sequences(
        [str(n) for n in range(n_rows)],
        np.split(run_items, bounds),
        np.split(run_types, bounds),
        np.split(run_stamps, bounds),
    )


def padded_inputs(seqs: Sequences, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pad_batch(seqs, range(len(seqs)), width)`` without a loop per row.

    Returns
    -------
    items, types, gaps : ndarray of shape (len(seqs), width), int64
        Right-aligned, zero where padded; gap buckets as ``gap_buckets`` computes them.
    """
    n = len(seqs.items)
    items = np.zeros((n, width), dtype=np.int64)
    types = np.zeros_like(items)
    gaps = np.zeros_like(items)
    lengths = np.fromiter((len(s) for s in seqs.items), dtype=np.int64, count=n)
    if not n or not lengths.sum() or width <= 0:
        return items, types, gaps
    flat_items = np.concatenate(seqs.items)
    flat_types = np.concatenate(seqs.types)
    flat_times = np.concatenate(seqs.times)
    owners = np.repeat(np.arange(n), lengths)
    first = _starts(owners)
    buckets = np.ones(len(flat_times), dtype=np.int64)
    later = ~first
    gap = np.maximum(flat_times[later] - flat_times[np.flatnonzero(later) - 1], 0.0)
    buckets[later] = gap_bucket_of(gap)
    ends = np.cumsum(lengths)
    from_end = ends[owners] - np.arange(len(owners))  # 1 for the newest step of each row
    shown = from_end <= width
    rows, cols = owners[shown], width - from_end[shown]
    items[rows, cols] = flat_items[shown]
    types[rows, cols] = flat_types[shown]
    gaps[rows, cols] = buckets[shown]
    return items, types, gaps


class RecencyIndex:
    """Each shopper's distinct items among their ``last`` newest steps, with the age of the newest.

    Built once per batch (one sort); :meth:`weights` then gives ``recency_weights`` for any
    ``last`` up to the one built with and any decay, without sorting again: the newest step of
    a (shopper, item) pair is younger than ``last`` exactly when some step of it is.
    """

    def __init__(self, seqs: Sequences, n_items: int, *, last: int) -> None:
        n = len(seqs.items)
        self.n_rows, self.n_items = n, n_items
        lengths = np.fromiter((len(s) for s in seqs.items), dtype=np.int64, count=n)
        empty = np.empty(0, dtype=np.int64)
        self.owners, self.cols, self.ages = empty, empty, empty
        if not n or not lengths.sum() or last <= 0:
            return
        flat = np.concatenate(seqs.items)
        owners = np.repeat(np.arange(n), lengths)
        ages = np.cumsum(lengths)[owners] - 1 - np.arange(len(flat))  # 0 = newest
        tail = ages < last
        owners, cols, ages = owners[tail], flat[tail] - 1, ages[tail]
        # the newest step of each (shopper, item) pair gives the weight (smallest age, largest decay power)
        order = np.lexsort((ages, cols, owners))
        owners, cols, ages = owners[order], cols[order], ages[order]
        first = np.ones(len(cols), dtype=bool)
        first[1:] = (owners[1:] != owners[:-1]) | (cols[1:] != cols[:-1])
        self.owners, self.cols, self.ages = owners[first], cols[first], ages[first]

    def weights(self, last: int, decay: float) -> sp.csr_matrix:
        """``decay ** age`` of each item's newest step among the ``last`` newest, float32 CSR."""
        keep = self.ages < last
        owners, cols = self.owners[keep], self.cols[keep]
        values = (decay ** self.ages[keep].astype(np.float64)).astype(np.float32)
        # already sorted by row then column without duplicates: the CSR arrays directly (no COO pass)
        indptr = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(owners, minlength=self.n_rows), out=indptr[1:])
        return sp.csr_matrix((values, cols, indptr), shape=(self.n_rows, self.n_items))


def recency_weights(seqs: Sequences, n_items: int, *, last: int = 20, decay: float = 0.8) -> sp.csr_matrix:
    """``history_weights`` without a loop per shopper: ``decay ** age`` of each item's newest step.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (len(seqs), n_items), float32
    """
    return RecencyIndex(seqs, n_items, last=last).weights(last, decay)


def recent_distinct(
    owners: np.ndarray, keys: np.ndarray, n_rows: int, recent: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each shopper's ``recent`` newest distinct keys, newest first.

    Parameters
    ----------
    owners : ndarray of shape (n,), int64
        Sorted ascending; each owner's events oldest first.
    keys : ndarray of shape (n,), int64
        Any integer code per event (equal codes = the same item).
    n_rows, recent : int

    Returns
    -------
    positions : ndarray of shape (n_rows, recent), int64
        Index into the event arrays of the newest event of each distinct key, newest key first;
        -1 where a shopper has fewer distinct keys.
    counts : ndarray of shape (n_rows,), int64
    """
    out = np.full((n_rows, recent), -1, dtype=np.int64)
    if not len(owners) or recent <= 0:
        return out, np.zeros(n_rows, dtype=np.int64)
    positions = np.arange(len(owners))
    # newest first within each owner, then keep the first (newest) event of each key
    order = np.lexsort((-positions, owners))
    by_key = np.lexsort((-positions, keys, owners))
    newest_of_key = np.ones(len(by_key), dtype=bool)
    newest_of_key[1:] = (owners[by_key[1:]] != owners[by_key[:-1]]) | (keys[by_key[1:]] != keys[by_key[:-1]])
    is_newest = np.zeros(len(owners), dtype=bool)
    is_newest[by_key[newest_of_key]] = True
    chosen = order[is_newest[order]]
    chosen_owners = owners[chosen]
    starts = np.searchsorted(chosen_owners, np.arange(n_rows))
    rank = np.arange(len(chosen)) - starts[chosen_owners]
    take = rank < recent
    out[chosen_owners[take], rank[take]] = chosen[take]
    counts = np.minimum(np.bincount(chosen_owners, minlength=n_rows), recent)
    return out, counts
