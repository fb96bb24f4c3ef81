"""The core's data: event logs as plain arrays, the item index, per-shopper sequences.

How a log becomes sequences (cleaning, collapsing repeats, padding) is
:mod:`recommendations.core.sequences`. Nothing here assumes integer keys: shoppers and items
are strings; the models see dense indices from :class:`ItemIndex`, with index 0 reserved for
padding.
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
