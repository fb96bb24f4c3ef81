"""Event logs as plain arrays, and the cleaned per-shopper sequences the models learn from.

Nothing here assumes integer keys: shoppers and items are strings; the models see dense indices
from :class:`ItemIndex`, with index 0 reserved for padding.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EVENT_TYPES = ("view", "click", "add_to_cart", "remove_from_cart", "wishlist", "purchase", "search")
# Event-type index for the network: 0 is padding.
TYPE_INDEX = {name: i + 1 for i, name in enumerate(EVENT_TYPES)}
N_TYPES = len(EVENT_TYPES) + 1
# Time-gap buckets: 0 padding, 1 "first event", then floor(log2(1 + seconds)) clipped to 30 buckets.
N_GAP_BUCKETS = 32

History = Sequence[tuple[str, str, float]]


@dataclass
class EventLog:
    """One row per event, any order.

    Attributes
    ----------
    users : ndarray of shape (n,), dtype object
        Shopper keys (str): a username, or ``"v:<visitor_id>"``.
    items : ndarray of shape (n,), dtype object
        Item keys (str).
    event_types : ndarray of shape (n,), dtype object
        Canonical event type names (see :data:`EVENT_TYPES`).
    timestamps : ndarray of shape (n,), dtype float64
        Unix seconds.
    values : ndarray of shape (n,), dtype float64, optional
        Money value, NaN when unknown.
    is_bot : ndarray of shape (n,), dtype bool, optional
        Bot-flagged events (dropped by cleaning).
    """

    users: np.ndarray
    items: np.ndarray
    event_types: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray | None = None
    is_bot: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.users = _str_array(self.users)
        self.items = _str_array(self.items)
        self.event_types = _str_array(self.event_types)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        n = len(self.users)
        if self.values is not None:
            self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if self.is_bot is not None:
            self.is_bot = np.asarray(self.is_bot, dtype=bool).reshape(-1)
        for name in ("items", "event_types", "timestamps", "values", "is_bot"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"EventLog.{name} has {len(arr)} rows, users has {n}")

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_csv(cls, path: str | Path) -> EventLog:
        """Read ``user_id,item_id,event_type,timestamp[,value]`` (header required).

        Raises
        ------
        ValueError
            Naming the file and line of the first bad row (missing column, unknown event type,
            non-numeric timestamp or value).
        """
        path = Path(path)
        users: list[str] = []
        items: list[str] = []
        types: list[str] = []
        times: list[float] = []
        values: list[float] = []
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            need = ["user_id", "item_id", "event_type", "timestamp"]
            missing = [c for c in need if c not in header]
            if missing:
                raise ValueError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
            cols = [header.index(c) for c in need]
            vcol = header.index("value") if "value" in header else None
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    u, i, t, ts = (row[c].strip() for c in cols)
                except IndexError:
                    raise ValueError(
                        f"{path}:{line_no}: expected {len(header)} columns, got {len(row)}"
                    ) from None
                if not u or not i:
                    raise ValueError(f"{path}:{line_no}: empty user_id or item_id")
                if t not in TYPE_INDEX:
                    raise ValueError(f"{path}:{line_no}: unknown event_type {t!r}")
                try:
                    tsf = float(ts)
                except ValueError:
                    raise ValueError(f"{path}:{line_no}: timestamp {ts!r} is not a number") from None
                if not math.isfinite(tsf):
                    raise ValueError(f"{path}:{line_no}: timestamp {ts!r} is not finite")
                val = math.nan
                if vcol is not None and vcol < len(row) and row[vcol].strip():
                    try:
                        val = float(row[vcol])
                    except ValueError:
                        raise ValueError(f"{path}:{line_no}: value {row[vcol]!r} is not a number") from None
                users.append(u)
                items.append(i)
                types.append(t)
                times.append(tsf)
                values.append(val)
        return cls(
            np.array(users, dtype=object),
            np.array(items, dtype=object),
            np.array(types, dtype=object),
            np.array(times, dtype=np.float64),
            np.array(values, dtype=np.float64) if vcol is not None else None,
        )

    @classmethod
    def from_histories(cls, histories: Mapping[str, History]) -> EventLog:
        """Build a log from ``{shopper: [(item, event_type, ts), ...]}``."""
        users, items, types, times = [], [], [], []
        for user, hist in histories.items():
            for item, etype, ts in hist:
                users.append(user)
                items.append(item)
                types.append(etype)
                times.append(float(ts))
        return cls(
            np.array(users, dtype=object),
            np.array(items, dtype=object),
            np.array(types, dtype=object),
            np.array(times, dtype=np.float64),
        )

    def subset(self, mask: np.ndarray) -> EventLog:
        """Rows where ``mask`` (bool array of shape (n,) or integer indices) selects."""
        return EventLog(
            self.users[mask],
            self.items[mask],
            self.event_types[mask],
            self.timestamps[mask],
            None if self.values is None else self.values[mask],
            None if self.is_bot is None else self.is_bot[mask],
        )

    def order(self) -> np.ndarray:
        """Indices sorting by (user, timestamp), stable so equal timestamps keep the log's order."""
        by_time = np.argsort(self.timestamps, kind="stable")
        users = self.users[by_time].astype(str)
        return by_time[np.argsort(users, kind="stable")]

    def histories(self) -> dict[str, list[tuple[str, str, float]]]:
        """Per shopper, ``(item, event_type, ts)`` oldest first (bot events excluded)."""
        out: dict[str, list[tuple[str, str, float]]] = {}
        idx = self.order()
        if self.is_bot is not None:
            idx = idx[~self.is_bot[idx]]
        for u, i, t, ts in zip(
            self.users[idx], self.items[idx], self.event_types[idx], self.timestamps[idx], strict=True
        ):
            out.setdefault(u, []).append((i, t, float(ts)))
        return out


def _str_array(values: Iterable[object]) -> np.ndarray:
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.size and not all(isinstance(v, str) for v in arr):
        arr = np.array([str(v) for v in arr], dtype=object)
    return arr


@dataclass
class ItemIndex:
    """Bidirectional map between item keys (str) and dense indices ``1..n`` (0 is padding)."""

    item_ids: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.item_ids = [str(i) for i in self.item_ids]
        self.index = {key: i + 1 for i, key in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def key(self, idx: int) -> str:
        """Item key of dense index ``idx`` (>= 1)."""
        return self.item_ids[idx - 1]


@dataclass
class Sequences:
    """Cleaned per-shopper sequences in dense indices.

    Attributes
    ----------
    users : list of str
        Shopper keys, one per sequence.
    items, types : list of ndarray of shape (len_u,), dtype int64
        Item indices (>= 1) and event-type indices (>= 1), oldest first.
    times : list of ndarray of shape (len_u,), dtype float64
        Unix seconds.
    """

    users: list[str]
    items: list[np.ndarray]
    types: list[np.ndarray]
    times: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_events(self) -> int:
        return int(sum(len(s) for s in self.items))

    def take(self, rows: Sequence[int] | np.ndarray) -> Sequences:
        """The shoppers of ``rows`` (positions), in that order."""
        return Sequences(
            [self.users[r] for r in rows],
            [self.items[r] for r in rows],
            [self.types[r] for r in rows],
            [self.times[r] for r in rows],
        )


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
        gaps = np.maximum(np.diff(np.asarray(times, dtype=np.float64)), 0.0)
        out[1:] = np.minimum(2 + np.floor(np.log2(1.0 + gaps)).astype(np.int64), N_GAP_BUCKETS - 1)
    return out


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
    order = log.order()
    users: list[str] = []
    items: list[np.ndarray] = []
    types: list[np.ndarray] = []
    times: list[np.ndarray] = []
    cur_user = None
    bi: list[int] = []
    bt: list[int] = []
    bs: list[float] = []

    def flush() -> None:
        if cur_user is not None and len(bi) >= min_events:
            sl = slice(-max_length, None) if max_length else slice(None)
            users.append(cur_user)
            items.append(np.asarray(bi[sl], dtype=np.int64))
            types.append(np.asarray(bt[sl], dtype=np.int64))
            times.append(np.asarray(bs[sl], dtype=np.float64))

    for u, i, t, ts in zip(
        log.users[order], log.items[order], log.event_types[order], log.timestamps[order], strict=True
    ):
        if u != cur_user:
            flush()
            cur_user, bi, bt, bs = u, [], [], []
        idx = index.index.get(i)
        if idx is None or t not in TYPE_INDEX:
            continue
        if bi and bi[-1] == idx:
            if event_weights.get(t, 0.0) > event_weights.get(EVENT_TYPES[bt[-1] - 1], 0.0):
                bt[-1] = TYPE_INDEX[t]
            continue
        bi.append(idx)
        bt.append(TYPE_INDEX[t])
        bs.append(float(ts))
    flush()
    return Sequences(users, items, types, times)


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
        bi: list[int] = []
        bt: list[int] = []
        bs: list[float] = []
        for ts, _, item, etype in rows:
            idx = index.index.get(item)
            w = event_weights.get(etype, 0.0)
            if idx is None or etype not in TYPE_INDEX or w <= 0:
                continue
            if bi and bi[-1] == idx:
                if w > event_weights.get(EVENT_TYPES[bt[-1] - 1], 0.0):
                    bt[-1] = TYPE_INDEX[etype]
                continue
            bi.append(idx)
            bt.append(TYPE_INDEX[etype])
            bs.append(ts)
        sl = slice(-max_length, None) if max_length else slice(None)
        out.users.append(str(n))
        out.items.append(np.asarray(bi[sl], dtype=np.int64))
        out.types.append(np.asarray(bt[sl], dtype=np.int64))
        out.times.append(np.asarray(bs[sl], dtype=np.float64))
    return out


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
