"""Per-shopper events packed on disk: memory-mapped arrays that a training reads without loading.

A packed folder holds one flat array per column (item code, event type, unix seconds, value), each
shopper's rows contiguous and oldest first, and ``offsets`` (shape ``(n_users + 1,)``): shopper ``r``
owns rows ``offsets[r]:offsets[r + 1]``. Item and shopper keys are stored once each (JSON), the
columns as raw little-endian arrays opened with :class:`numpy.memmap` in read-only mode, so a
process maps them instead of reading them and the operating system pages in only what is touched.
A writer appends chunks as they arrive (from a database cursor ordered by shopper then time), so
neither the writer nor a reader ever holds every event.

The same layout holds collapsed sequences in dense item indices (:func:`pack_sequences`), from
which :func:`packed_sequences` gives a :class:`~recommendations.core.dataset.Sequences` whose rows
are views into the mapped arrays: the trainer cuts its windows from them batch by batch.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from recommendations.core.dataset import EVENT_TYPES, TYPE_INDEX, EventLog, Sequences

__all__ = ["PackedEvents", "PackedEventsWriter", "pack_event_log", "pack_sequences", "packed_sequences"]

# column name -> dtype on disk (little-endian, fixed width: a reader on any machine maps them as is)
COLUMNS: dict[str, str] = {"items": "<i4", "types": "<i1", "times": "<f8", "values": "<f8"}
META = "meta.json"
FORMAT_VERSION = 1


class PackedEventsWriter:
    """Append events, grouped by shopper and oldest first, to a packed folder.

    Parameters
    ----------
    directory : path
        Created if missing; its packed files are overwritten.

    Rows of one shopper may span several :meth:`add` calls but must be contiguous: a shopper who
    reappears after another one raises ``ValueError`` (the reader's offsets could not say where its
    rows are). Unknown event types raise ``ValueError`` too.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, BinaryIO] = {
            name: (self.directory / f"{name}.bin").open("wb") for name in (*COLUMNS, "offsets")
        }
        self._users: list[str] = []
        self._seen_users: set[str] = set()
        self._item_codes: dict[str, int] = {}
        self._n_events = 0
        np.zeros(1, dtype="<i8").tofile(self._files["offsets"])

    def add(
        self,
        users: np.ndarray | list[str],
        items: np.ndarray | list[str],
        event_types: np.ndarray | list[str],
        timestamps: np.ndarray | list[float],
        values: np.ndarray | list[float] | None = None,
    ) -> None:
        """Append one chunk of rows (shopper, item key, event type name, unix seconds, value)."""
        n = len(users)
        if not n:
            return
        user_arr = np.asarray(users, dtype=object)
        codes = self._item_codes
        item_codes = np.fromiter(
            (codes.setdefault(str(key), len(codes)) for key in items), dtype="<i4", count=n
        )
        try:
            type_codes = np.fromiter((TYPE_INDEX[t] for t in event_types), dtype="<i1", count=n)
        except KeyError as exc:
            raise ValueError(f"unknown event type {exc.args[0]!r}") from None
        times = np.asarray(timestamps, dtype="<f8").reshape(-1)
        vals = np.full(n, np.nan, dtype="<f8") if values is None else np.asarray(values, dtype="<f8")
        # rows where a new shopper starts: every change of key, and row 0 unless it continues the last
        starts = np.flatnonzero(np.r_[True, user_arr[1:] != user_arr[:-1]])
        if self._users and user_arr[0] == self._users[-1]:
            starts = starts[1:]
        boundaries: list[int] = []
        for s in starts.tolist():
            user = str(user_arr[s])
            if user in self._seen_users:
                raise ValueError(f"shopper {user!r} is not contiguous: rows must be grouped by shopper")
            self._seen_users.add(user)
            if self._users:  # the previous shopper ends where this one starts
                boundaries.append(self._n_events + s)
            self._users.append(user)
        np.asarray(boundaries, dtype="<i8").tofile(self._files["offsets"])
        item_codes.tofile(self._files["items"])
        type_codes.tofile(self._files["types"])
        times.tofile(self._files["times"])
        vals.tofile(self._files["values"])
        self._n_events += n

    def close(self, *, item_keys: list[str] | None = None) -> PackedEvents:
        """Finish the folder and open it for reading.

        ``item_keys`` (optional) names the item codes when the caller wrote codes, not keys, through
        :meth:`add_codes`; otherwise the keys met by :meth:`add` are stored.
        """
        if self._users:
            np.array([self._n_events], dtype="<i8").tofile(self._files["offsets"])
        for fh in self._files.values():
            fh.close()
        keys = item_keys if item_keys is not None else list(self._item_codes)
        meta = {
            "version": FORMAT_VERSION,
            "n_events": self._n_events,
            "users": self._users,
            "item_keys": keys,
        }
        (self.directory / META).write_text(json.dumps(meta), encoding="utf-8")
        return PackedEvents.open(self.directory)

    def add_codes(self, user: str, items: np.ndarray, types: np.ndarray, times: np.ndarray) -> None:
        """Append one whole shopper already in codes (item codes, type indices, unix seconds)."""
        if user in self._seen_users:
            raise ValueError(f"shopper {user!r} is not contiguous: rows must be grouped by shopper")
        self._seen_users.add(user)
        if self._users:
            np.array([self._n_events], dtype="<i8").tofile(self._files["offsets"])
        self._users.append(user)
        n = len(items)
        np.asarray(items, dtype="<i4").tofile(self._files["items"])
        np.asarray(types, dtype="<i1").tofile(self._files["types"])
        np.asarray(times, dtype="<f8").tofile(self._files["times"])
        np.full(n, np.nan, dtype="<f8").tofile(self._files["values"])
        self._n_events += n


@dataclass
class PackedEvents:
    """A packed folder opened read-only (see the module docstring).

    Attributes
    ----------
    users : list of str
        Shopper keys; row ``r`` of the folder is ``users[r]``.
    item_keys : list of str
        Item key of each item code.
    offsets : ndarray of shape (n_users + 1,), int64
    items : memmap of shape (n_events,), int32
        Item codes (indices into ``item_keys``).
    types : memmap of shape (n_events,), int8
        Event-type indices (``TYPE_INDEX``, >= 1).
    times, values : memmap of shape (n_events,), float64
    """

    directory: Path
    users: list[str]
    item_keys: list[str]
    offsets: np.ndarray
    items: np.ndarray
    types: np.ndarray
    times: np.ndarray
    values: np.ndarray

    @classmethod
    def open(cls, directory: str | Path) -> PackedEvents:
        """Map a folder written by :class:`PackedEventsWriter` (nothing is read into memory)."""
        directory = Path(directory)
        meta: dict[str, Any] = json.loads((directory / META).read_text(encoding="utf-8"))
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: packed events version {meta.get('version')!r} is not supported")
        n = int(meta["n_events"])
        users = [str(u) for u in meta["users"]]
        columns = {name: _map(directory / f"{name}.bin", dtype, n) for name, dtype in COLUMNS.items()}
        offsets = _map(directory / "offsets.bin", "<i8", len(users) + 1 if users else 1)
        if users and int(offsets[-1]) != n:
            raise ValueError(f"{directory}: offsets end at {int(offsets[-1])}, not at {n} events")
        return cls(directory, users, [str(k) for k in meta["item_keys"]], offsets, **columns)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_events(self) -> int:
        """Number of packed rows."""
        return len(self.times)

    def rows_of(self, row: int) -> slice:
        """The slice of the columns that holds shopper ``row``."""
        return slice(int(self.offsets[row]), int(self.offsets[row + 1]))

    def user_events(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item codes, type indices and times of shopper ``row``: views, nothing copied."""
        sl = self.rows_of(row)
        return self.items[sl], self.types[sl], self.times[sl]

    def user_chunks(self, max_events: int) -> Iterator[range]:
        """Consecutive ranges of shopper rows holding about ``max_events`` events each (at least one)."""
        start = 0
        while start < len(self.users):
            limit = int(self.offsets[start]) + max(int(max_events), 1)
            end = int(np.searchsorted(self.offsets, limit, side="right")) - 1
            end = min(max(end, start + 1), len(self.users))
            yield range(start, end)
            start = end

    def to_event_log(self, rows: range | None = None) -> EventLog:
        """The events of shopper ``rows`` (all by default) as an in-memory :class:`EventLog`.

        Shopper, item and type strings are shared objects (one per distinct value), as the
        database read interns them.
        """
        rows = range(len(self.users)) if rows is None else rows
        if not len(rows):
            empty = np.zeros(0, dtype=object)
            return EventLog(empty, empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
        lo, hi = int(self.offsets[rows.start]), int(self.offsets[rows.stop])
        counts = np.diff(np.asarray(self.offsets[rows.start : rows.stop + 1]))
        users = np.array(self.users[rows.start : rows.stop], dtype=object)
        item_names = np.array(self.item_keys, dtype=object)
        type_names = np.array(("", *EVENT_TYPES), dtype=object)
        return EventLog(
            users=np.repeat(users, counts),
            items=item_names[np.asarray(self.items[lo:hi])],
            event_types=type_names[np.asarray(self.types[lo:hi])],
            timestamps=np.array(self.times[lo:hi]),
            values=np.array(self.values[lo:hi]),
            is_bot=np.zeros(hi - lo, dtype=bool),
        )


def _map(path: Path, dtype: str, count: int) -> np.ndarray:
    """Read-only map of ``count`` values (an empty file cannot be mapped: a plain empty array)."""
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


def pack_event_log(log: EventLog, directory: str | Path, *, chunk_events: int = 100_000) -> PackedEvents:
    """Pack an in-memory log (any order; bot events dropped) into ``directory``, a chunk at a time."""
    order = log.order()
    if log.is_bot is not None:
        order = order[~log.is_bot[order]]
    writer = PackedEventsWriter(directory)
    values = log.values if log.values is not None else np.full(len(log), np.nan)
    for start in range(0, len(order), chunk_events):
        rows = order[start : start + chunk_events]
        columns = (log.users, log.items, log.event_types, log.timestamps, values)
        writer.add(*(column[rows] for column in columns))
    return writer.close()


def pack_sequences(seqs: Sequences, directory: str | Path) -> PackedEvents:
    """Write collapsed sequences (dense item indices >= 1 as codes) into ``directory``."""
    writer = PackedEventsWriter(directory)
    n_items = 0
    for user, items, types, times in zip(seqs.users, seqs.items, seqs.types, seqs.times, strict=True):
        writer.add_codes(user, items, types, times)
        if len(items):
            n_items = max(n_items, int(items.max()))
    return writer.close(item_keys=[str(i) for i in range(n_items + 1)])


def packed_sequences(packed: PackedEvents) -> Sequences:
    """Sequences whose rows are int64/float64 views of a folder written by :func:`pack_sequences`.

    Item and type rows are read through ``astype`` on access only where the trainer needs them; here
    they stay views of the mapped files (int32 and int8 widen when a batch is gathered).
    """
    bounds = np.asarray(packed.offsets).tolist()
    pairs = list(itertools.pairwise(bounds))
    return Sequences(
        list(packed.users),
        [packed.items[a:b] for a, b in pairs],
        [packed.types[a:b] for a, b in pairs],
        [packed.times[a:b] for a, b in pairs],
    )
