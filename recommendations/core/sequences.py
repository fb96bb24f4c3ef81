"""From event logs to what the models read: cleaning, per-shopper sequences, padded inputs.

A sequence collapses consecutive repeats of one item into one step (the first event's time, the
heaviest event type); the network reads the newest steps right-aligned, with log-scaled time
gaps (:func:`gap_buckets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from recommendations.core.dataset import (
    EVENT_TYPES,
    N_GAP_BUCKETS,
    TYPE_INDEX,
    EventLog,
    History,
    ItemIndex,
    Sequences,
)

__all__ = [
    "build_sequences",
    "clean_log",
    "gap_bucket_of",
    "gap_buckets",
    "histories_to_sequences",
    "pad_batch",
    "rare_item_filter",
]


def gap_buckets(times: np.ndarray) -> np.ndarray:
    """Log-scaled time-gap bucket of each event relative to the previous one.

    Parameters
    ----------
    times : ndarray of shape (L,), dtype float64
        Unix seconds, oldest first.

    Returns
    -------
    ndarray of shape (L,), dtype int64
        1 for the first event, else ``2 + floor(log2(1 + gap_seconds))`` clipped to ``N_GAP_BUCKETS - 1``.
    """
    out = np.ones(len(times), dtype=np.int64)
    if len(times) > 1:
        out[1:] = gap_bucket_of(np.diff(np.asarray(times, dtype=np.float64)))
    return out


def gap_bucket_of(gaps: np.ndarray) -> np.ndarray:
    """Bucket of time gaps (seconds since the previous event; negative counts as 0), int64.

    ``2 + floor(log2(1 + gap))`` clipped to ``N_GAP_BUCKETS - 1``; bucket 1 is a first event and
    0 padding, so a gap's bucket is at least 2.
    """
    gaps = np.maximum(gaps, 0.0)
    return np.minimum(2 + np.floor(np.log2(1.0 + gaps)).astype(np.int64), N_GAP_BUCKETS - 1)


def clean_log(
    log: EventLog, event_weights: Mapping[str, float], known_items: Mapping[str, int] | None = None
) -> EventLog:
    """Drop bot-flagged events, unknown event types, zero-weight types, unknown items and exact duplicates.

    Parameters
    ----------
    log : EventLog
    event_weights : mapping of str to float
        Types with weight <= 0 (or absent) are dropped.
    known_items : mapping of str to int, optional
        When given, events on other items are dropped.

    Returns
    -------
    EventLog
        Sorted by (user, timestamp), stable.
    """
    keep = np.array([event_weights.get(t, 0.0) > 0 for t in log.event_types], dtype=bool)
    if log.is_bot is not None:
        keep &= ~log.is_bot
    keep &= np.array([bool(i) for i in log.items], dtype=bool) if len(log) else keep
    if known_items is not None:
        keep &= np.array([i in known_items for i in log.items], dtype=bool)
    log = log.subset(np.flatnonzero(keep))
    log = log.subset(log.order())
    if len(log) > 1:
        # exact duplicates (same shopper, item, type and second) are double-sent events
        dup = np.zeros(len(log), dtype=bool)
        dup[1:] = (
            (log.users[1:] == log.users[:-1])
            & (log.items[1:] == log.items[:-1])
            & (log.event_types[1:] == log.event_types[:-1])
            & (log.timestamps[1:] == log.timestamps[:-1])
        )
        log = log.subset(~dup)
    return log


def rare_item_filter(log: EventLog, min_item_users: int) -> EventLog:
    """Keep events on items seen by at least ``min_item_users`` distinct shoppers."""
    if min_item_users <= 1 or not len(log):
        return log
    pairs = {(u, i) for u, i in zip(log.users, log.items, strict=True)}
    counts: dict[str, int] = {}
    for _, i in pairs:
        counts[i] = counts.get(i, 0) + 1
    keep = np.array([counts[i] >= min_item_users for i in log.items], dtype=bool)
    return log.subset(keep)


def build_sequences(
    log: EventLog,
    index: ItemIndex,
    event_weights: Mapping[str, float],
    *,
    min_events: int = 1,
    max_length: int | None = None,
) -> Sequences:
    """Per-shopper sequences with consecutive repeats of the same item collapsed.

    A run of the same item keeps the first event's time and the heaviest event type (a view then an
    add-to-cart of one item is one step whose type is add-to-cart).

    Parameters
    ----------
    log : EventLog
        Already cleaned (:func:`clean_log`); events on items outside ``index`` are skipped.
    index : ItemIndex
    event_weights : mapping of str to float
    min_events : int
        Shoppers with fewer collapsed steps are dropped.
    max_length : int, optional
        Keep only the most recent ``max_length`` steps.
    """
    out = Sequences([], [], [], [])
    if not len(log):
        return out
    order = log.order()
    log_users = log.users[order]
    new_user = np.ones(len(order), dtype=bool)
    new_user[1:] = log_users[1:] != log_users[:-1]
    starts = np.flatnonzero(new_user)
    ends = np.append(starts[1:], len(order))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[start:end]
        steps = zip(log.items[rows], log.event_types[rows], log.timestamps[rows], strict=True)
        count, items, types, times = _collapse(steps, index, event_weights, max_length)
        if count >= min_events:
            out.users.append(log_users[start])
            out.items.append(items)
            out.types.append(types)
            out.times.append(times)
    return out


def histories_to_sequences(
    histories: Sequence[History],
    index: ItemIndex,
    event_weights: Mapping[str, float],
    max_length: int | None = None,
) -> Sequences:
    """Encode raw histories for inference: unknown items and zero-weight types are ignored.

    Returns one sequence per history, in order (possibly empty), users named ``"0".."n-1"``.
    """
    out = Sequences([], [], [], [])
    for n, hist in enumerate(histories):
        rows = sorted(((float(ts), k, str(item), str(etype)) for k, (item, etype, ts) in enumerate(hist)))
        steps = ((item, etype, ts) for ts, _, item, etype in rows if event_weights.get(etype, 0.0) > 0)
        _, items, types, times = _collapse(steps, index, event_weights, max_length)
        out.users.append(str(n))
        out.items.append(items)
        out.types.append(types)
        out.times.append(times)
    return out


def _collapse(
    steps: Iterable[tuple[str, str, float]],
    index: ItemIndex,
    event_weights: Mapping[str, float],
    max_length: int | None,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One shopper's steps ``(item key, event type, unix seconds)``, oldest first, as dense arrays.

    Items outside ``index`` and unknown event types are skipped; a run of the same item keeps the
    first event's time and the heaviest event type. Returns the number of collapsed steps and the
    newest ``max_length`` of them (all when None) as item, type and time arrays.
    """
    bi: list[int] = []
    bt: list[int] = []
    bs: list[float] = []
    for item, etype, ts in steps:
        idx = index.index.get(item)
        if idx is None or etype not in TYPE_INDEX:
            continue
        if bi and bi[-1] == idx:
            if event_weights.get(etype, 0.0) > event_weights.get(EVENT_TYPES[bt[-1] - 1], 0.0):
                bt[-1] = TYPE_INDEX[etype]
            continue
        bi.append(idx)
        bt.append(TYPE_INDEX[etype])
        bs.append(float(ts))
    sl = slice(-max_length, None) if max_length else slice(None)
    return (
        len(bi),
        np.asarray(bi[sl], dtype=np.int64),
        np.asarray(bt[sl], dtype=np.int64),
        np.asarray(bs[sl], dtype=np.float64),
    )


def pad_batch(
    seqs: Sequences, rows: Sequence[int] | np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-padded (right-aligned) model inputs for ``rows`` of ``seqs``, last ``length`` steps.

    Returns
    -------
    items, types, gaps : ndarray of shape (len(rows), length), dtype int64
        Zero where padded.
    """
    items = np.zeros((len(rows), length), dtype=np.int64)
    types = np.zeros_like(items)
    gaps = np.zeros_like(items)
    for r, row in enumerate(rows):
        it = seqs.items[row]
        if not len(it):
            continue
        gp = gap_buckets(seqs.times[row])
        n = min(len(it), length)
        items[r, -n:] = it[-n:]
        types[r, -n:] = seqs.types[row][-n:]
        gaps[r, -n:] = gp[-n:]
    return items, types, gaps
