"""The offline evaluation protocol (``docs/evaluation.md``) on :class:`EventLog`s.

Iterative k-core on distinct (user, item) pairs, consecutive repeats collapsed, one target per user
(the last novel item, or the last item in ``any`` mode), ``tune_train`` + ``valid`` one step earlier,
full ranking over every item in train, history masked in novel mode, a user without a list is a miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommendations.core.dataset import EventLog, History

RecommendFn = Callable[..., list[list[tuple[str, float]]]]


@dataclass
class ProtocolSplit:
    """Train / tuning logs and one target per user.

    Attributes
    ----------
    train : EventLog
        Every event of each user before the test target (other users' later events stay in).
    tune_train : EventLog
        The events before each user's validation target (tuning only).
    test, valid : dict of str to str
        User key -> target item key.
    mask_history : bool
        Novel mode: items of the user's history are excluded from the ranking.
    """

    train: EventLog
    tune_train: EventLog
    test: dict[str, str]
    valid: dict[str, str]
    mask_history: bool


def _without_bots(log: EventLog) -> EventLog:
    return log if log.is_bot is None else log.subset(~log.is_bot)


def kcore(log: EventLog, k: int) -> EventLog:
    """Iteratively keep events whose user and item both have >= ``k`` distinct (user, item) pairs."""
    while True:
        pairs = set(zip(log.users, log.items, strict=True))
        uc: dict[str, int] = {}
        ic: dict[str, int] = {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        keep = np.array(
            [uc[u] >= k and ic[i] >= k for u, i in zip(log.users, log.items, strict=True)], dtype=bool
        )
        if keep.all():
            return log
        log = log.subset(keep)


def _novel_last(seq: list[str]) -> int | None:
    """Last index ``i >= 1`` whose item does not occur before it (linear: first occurrences, once)."""
    first: dict[str, int] = {}
    for k, x in enumerate(seq):
        first.setdefault(x, k)
    for i in range(len(seq) - 1, 0, -1):
        if first[seq[i]] == i:
            return i
    return None


def _last(seq: list[str]) -> int | None:
    return len(seq) - 1 if len(seq) > 1 else None


def _collapsed_groups(log: EventLog) -> list[np.ndarray]:
    """Row indices per user in (user, timestamp, log order), consecutive repeats of an item dropped."""
    order = log.order()
    users, items = log.users[order], log.items[order]
    same = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        same[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    order, users = order[~same], users[~same]
    if not len(order):
        return []
    bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
    return np.split(order, bounds)


def protocol_split(log: EventLog, k_core: int = 5, mode: str = "novel") -> ProtocolSplit:
    """Split like ``protocol.py LOG OUT K MODE``.

    Parameters
    ----------
    log : EventLog
    k_core : int
    mode : {"novel", "any"}
    """
    if mode not in ("novel", "any"):
        raise ValueError(f"mode must be 'novel' or 'any', got {mode!r}")
    pick = _novel_last if mode == "novel" else _last
    log = kcore(_without_bots(log), k_core)
    train_rows, tune_rows = [], []
    test: dict[str, str] = {}
    valid: dict[str, str] = {}
    for rows in _collapsed_groups(log):
        items = [str(x) for x in log.items[rows]]
        t = pick(items)
        if t is None:
            continue
        user = str(log.users[rows[0]])
        test[user] = items[t]
        train_rows.append(rows[:t])
        v = pick(items[:t])
        if v is not None:
            valid[user] = items[v]
            tune_rows.append(rows[:v])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return ProtocolSplit(
        log.subset(cat(train_rows)), log.subset(cat(tune_rows)), test, valid, mode == "novel"
    )


def holdout_last_events(log: EventLog, *, min_events: int = 3) -> tuple[EventLog, dict[str, str]]:
    """Time-based holdout: each user's last novel item is the target, their events from it on are removed.

    Users with fewer than ``min_events`` collapsed events (or no novel item) stay whole in the train log.

    Returns
    -------
    train : EventLog
    targets : dict of str to str
        User key -> held-out item key.
    """
    log = _without_bots(log)
    keep = np.ones(len(log), dtype=bool)
    order = log.order()
    # each user's slice of ``order`` (rows in time order), found once: a scan of the whole log per user
    # made this quadratic (31 s at 100k events, hours at 1M)
    sorted_users = log.users[order]
    starts: np.ndarray = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    ends: np.ndarray = np.r_[starts[1:], len(order)] if len(order) else starts
    span = {sorted_users[a]: (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
    targets: dict[str, str] = {}
    for rows in _collapsed_groups(log):
        if len(rows) < min_events:
            continue
        items = [str(x) for x in log.items[rows]]
        t = _novel_last(items)
        if t is None:
            continue
        user = str(log.users[rows[0]])
        targets[user] = items[t]
        # drop every event of this user at or after the target event (in time order)
        a, b = span[log.users[rows[0]]]
        user_rows = order[a:b]
        pos = int(np.flatnonzero(user_rows == rows[t])[0])
        keep[user_rows[pos:]] = False
    return log.subset(keep), targets


def evaluate(
    recommend_fn: RecommendFn, train: EventLog, targets: dict[str, str], *, mask_history: bool, k: int = 10
) -> dict[str, Any]:
    """Score ``recommend_fn`` on ``targets`` exactly like ``protocol.metrics``.

    Parameters
    ----------
    recommend_fn : callable (histories, n, exclude) -> list of lists of (item, score)
    train : EventLog
        Histories come from here; the catalogue is every item in it.
    targets : dict of str to str
    mask_history : bool
        Pass each user's history items as ``exclude``.
    k : int

    Returns
    -------
    dict
        ``HR@k``, ``NDCG@k``, ``MRR@k``, ``coverage@k`` (rounded to 4 places) and ``users``.
    """
    by_user = train.histories()
    users = list(targets)
    histories: list[History] = [by_user.get(u, []) for u in users]
    exclude = [{i for i, _, _ in h} for h in histories] if mask_history else None
    recs = recommend_fn(histories, k, exclude) if users else []
    hits = ndcg = mrr = 0.0
    shown: set[str] = set()
    for user, lst in zip(users, recs, strict=True):
        top = [item for item, _ in lst][:k]
        shown.update(top)
        target = targets[user]
        if target in top:
            r = top.index(target)
            hits += 1
            ndcg += 1 / math.log2(r + 2)
            mrr += 1 / (r + 1)
    n = max(len(users), 1)
    n_items = max(len(set(train.items)), 1)
    return {
        f"HR@{k}": round(hits / n, 4),
        f"NDCG@{k}": round(ndcg / n, 4),
        f"MRR@{k}": round(mrr / n, 4),
        f"coverage@{k}": round(len(shown) / n_items, 4),
        "users": len(users),
    }
