"""Choices made on validation data: the filters, the holdouts, the candidate sources' scores and the blend.

Every choice of :class:`~recommendations.core.recommender.BehaviorRecommender` that differs between shops
(sparse logs of one-off views against long histories of re-visits) is made here on a validation split
built like the evaluation protocol's tune split: each shopper's last step before the held-out one is the
target, ranked among every item. A choice fixed in the configuration is never searched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recommendations.core.candidates import history_weights
from recommendations.core.components import TIE_BREAK, recency_spec
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.metrics import hit_rate_at_k, mrr_at_k, ndcg_at_k
from recommendations.core.validation import Validation, validation_ranks


def metrics_of(ranks: np.ndarray) -> dict[str, float]:
    """HR, NDCG and MRR at 10 of 0-based target ranks, rounded for reports."""
    return {
        "HR@10": round(hit_rate_at_k(ranks), 5),
        "NDCG@10": round(ndcg_at_k(ranks), 5),
        "MRR@10": round(mrr_at_k(ranks), 5),
    }


def holdout(seqs: Sequences, mode: str) -> tuple[Sequences, Sequences, np.ndarray, list[int]]:
    """Per shopper, the last step (``"any"``) or last novel step becomes a validation target.

    Returns
    -------
    train : Sequences
        Every shopper, with the steps before the target (all steps for shoppers without one).
    inputs : Sequences
        The shoppers with a target: their steps before it.
    targets : ndarray of shape (len(inputs),), int64
    rows : list of int
        Row of ``seqs`` of each target.
    """
    train = Sequences([], [], [], [])
    v_in = Sequences([], [], [], [])
    targets, rows = [], []
    for r, (u, it, tp, tm) in enumerate(zip(seqs.users, seqs.items, seqs.types, seqs.times, strict=True)):
        t = None
        if len(it) >= 3:
            if mode == "any":
                t = len(it) - 1
            else:
                seen_before: dict[int, int] = {}
                for k, x in enumerate(it):
                    seen_before.setdefault(int(x), k)
                for k in range(len(it) - 1, 1, -1):
                    if seen_before[int(it[k])] == k:
                        t = k
                        break
        end = len(it) if t is None else t
        train.users.append(u)
        train.items.append(it[:end])
        train.types.append(tp[:end])
        train.times.append(tm[:end])
        if t is None:
            continue
        v_in.users.append(u)
        v_in.items.append(it[:t])
        v_in.types.append(tp[:t])
        v_in.times.append(tm[:t])
        targets.append(int(it[t]))
        rows.append(r)
    return train, v_in, np.asarray(targets, dtype=np.int64), rows


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed random sample of at most ``limit`` of ``n`` rows."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def row_normalise(m: np.ndarray) -> np.ndarray:
    s = m.sum(1, keepdims=True)
    normalised: np.ndarray = np.divide(m, s, out=np.zeros_like(m), where=s > 0)
    return normalised


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(1, keepdims=True)
    return probabilities


def components(
    seqs: Sequences, logits: np.ndarray | None, sources: dict[str, Any], names: Sequence[str], max_length: int
) -> dict[str, np.ndarray]:
    """Row-normalised score of each candidate source, shape (len(seqs), n_items) float32 each.

    ``sources`` holds the fitted ``covisitation``, ``itemknn`` and ``transitions`` matrices and the
    ``popularity`` vector; ``logits`` the network's (needed only for ``"network"``).
    """
    n = len(sources["popularity"])
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "network":
            assert logits is not None
            m = softmax(logits.astype(np.float64))
        elif name == "popularity":
            m = np.tile(sources["popularity"], (len(seqs), 1))
        else:
            source, last, decay = recency_spec(name, max_length)
            hist = history_weights(seqs, n, last=last, decay=decay)
            m = hist.toarray() if source is None else np.asarray((hist @ sources[source]).todense())
        out[name] = row_normalise(np.asarray(m, dtype=np.float64)).astype(np.float32)
    return out


def _simplex(k: int, steps: int) -> list[tuple[float, ...]]:
    """Weight vectors of ``k`` components on a grid of ``1/steps`` that sum to 1."""
    out = []
    for c in itertools.product(range(steps + 1), repeat=k - 1):
        if sum(c) <= steps:
            out.append(tuple(x / steps for x in (*c, steps - sum(c))))
    return out


class _Ranker:
    """Ranks of the validation targets under weighted sums of fixed component matrices."""

    def __init__(self, comps: dict[str, np.ndarray], validation: Validation, popularity: np.ndarray) -> None:
        self.names = list(comps)
        self.stack = torch.from_numpy(np.stack([comps[n] for n in self.names]))
        tie = torch.from_numpy(
            (TIE_BREAK * popularity / (popularity.max(initial=0.0) + 1e-12)).astype(np.float32)
        )
        # tie-break and history mask folded into one additive base, built once: each weight vector then
        # costs one weighted sum and one comparison pass (the same ranks as ``validation_ranks``)
        self.base = tie[None, :].repeat(self.stack.shape[1], 1)
        if validation.mask_history:
            rows, cols = validation.history_mask()
            self.base[rows, cols] = float("-inf")
        self.rows = torch.arange(self.stack.shape[1])
        self.targets = torch.from_numpy(validation.targets - 1)
        self.cache: dict[tuple[float, ...], float] = {}

    def ranks(self, weights: Sequence[float]) -> np.ndarray:
        s = torch.tensordot(torch.tensor(list(weights), dtype=torch.float32), self.stack, dims=1)
        s += self.base
        t = s[self.rows, self.targets]
        ranks: np.ndarray = ((s >= t[:, None]).sum(1) - 1).numpy().astype(np.int64)
        self.cache[tuple(round(w, 4) for w in weights)] = ndcg_at_k(ranks)
        return ranks

    def ndcg(self, weights: Sequence[float]) -> float:
        key = tuple(round(w, 4) for w in weights)
        return self.cache[key] if key in self.cache else ndcg_at_k(self.ranks(weights))


def choose_blend(
    comps: dict[str, np.ndarray], validation: Validation, popularity: np.ndarray, *, search: bool = True
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Validation metrics of each source alone and of the best blend (simplex grid, then local moves).

    Returns
    -------
    metrics : dict
        ``{source: {"HR@10", "NDCG@10", "MRR@10"}, ..., "blend": {...}}``.
    weights : dict of str to float
        The best blend's weights (the network alone when ``search`` is false).
    """
    ranker = _Ranker(comps, validation, popularity)
    names = ranker.names
    metrics: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        metrics[name] = metrics_of(ranker.ranks([float(j == k) for j in range(len(names))]))
    best_w: tuple[float, ...] | None = None
    best = -1.0
    steps = 10 if len(_simplex(len(names), 10)) <= 400 else 5
    for w in _simplex(len(names), steps) if search else []:
        if "popularity" in names and w[names.index("popularity")] > 0.3:
            continue  # popularity mostly breaks ties; large weights never help and cost time
        score = ranker.ndcg(w)
        if score > best + 1e-12:
            best, best_w = score, w
    # local refinement: move 0.05 of weight between two sources while it helps
    for _ in range(10 if best_w is not None else 0):
        improved = False
        for a, b in itertools.permutations(range(len(names)), 2):
            moved = list(best_w or ())
            if moved[a] < 0.05 - 1e-9:
                continue
            moved[a], moved[b] = round(moved[a] - 0.05, 4), round(moved[b] + 0.05, 4)
            score = ranker.ndcg(moved)
            if score > best + 1e-12:
                best, best_w, improved = score, tuple(moved), True
        if not improved:
            break
    if best_w is None:
        best_w = tuple(1.0 if n == "network" else 0.0 for n in names)
    metrics["blend"] = metrics_of(ranker.ranks(best_w))
    return metrics, dict(zip(names, best_w, strict=True))


@dataclass
class FilterChoice:
    """The rare-item and short-history filters and the validation figure of each candidate."""

    min_item_users: int
    min_user_events: int
    validation: dict[str, float]
    searched: bool


def _restrict(seqs: Sequences, keep_items: np.ndarray, min_events: int) -> Sequences:
    """``seqs`` without the items outside ``keep_items`` (bool by item index) and shorter histories."""
    out = Sequences([], [], [], [])
    for u, it, tp, tm in zip(seqs.users, seqs.items, seqs.types, seqs.times, strict=True):
        k = keep_items[it]
        if int(k.sum()) < min_events:
            continue
        out.users.append(u)
        out.items.append(it[k])
        out.types.append(tp[k])
        out.times.append(tm[k])
    return out


def choose_filters(
    seqs: Sequences,
    n_items: int,
    config: NetworkConfig,
    fit_sources: Callable[[Sequences, int], dict[str, Any]],
) -> FilterChoice:
    """The ``(min_item_users, min_user_events)`` of ``config.filter_grid`` best on validation.

    ``seqs`` are every shopper's unfiltered steps. The last novel step of each shopper is held out; each
    candidate filter is applied to the rest only (a held-out item that the filter drops counts as a
    miss, as it does for a shopper), and the co-visitation and item-kNN sources fitted on what remains
    rank the held-out items. A filter fixed in the configuration is not searched; ties keep the
    stronger filter (a smaller model).
    """
    fixed_items, fixed_users = config.min_item_users, config.min_user_events
    grid = [
        (a, b)
        for a, b in config.filter_grid
        if (fixed_items is None or a == fixed_items) and (fixed_users is None or b == fixed_users)
    ]
    if fixed_items is not None and fixed_users is not None:
        return FilterChoice(int(fixed_items), int(fixed_users), {}, False)
    if not grid:
        grid = [(int(fixed_items or 1), int(fixed_users or 1))]
    if len(grid) == 1:
        return FilterChoice(grid[0][0], grid[0][1], {}, False)
    mode = "any" if config.mode == "any" else "novel"
    train, inputs, targets, _ = holdout(seqs, mode)
    if not len(targets):
        return FilterChoice(grid[0][0], grid[0][1], {}, False)
    pick = sample_rows(len(targets), config.max_validation_users, config.random_seed)
    inputs, targets = inputs.take(pick.tolist()), targets[pick]
    validation = Validation(inputs, targets, mask_history=mode == "novel")
    # distinct shoppers per item in the training part (index 0 is padding)
    users_per_item = np.zeros(n_items + 1, dtype=np.int64)
    for it in train.items:
        users_per_item[np.unique(it)] += 1
    scores: dict[str, float] = {}
    for min_items, min_events in grid:
        keep = users_per_item >= min_items
        keep[0] = False
        part = _restrict(train, keep, min_events)
        sources = fit_sources(part, n_items)
        comps = components(
            _restrict(inputs, keep, 0), None, sources, ["covisitation", "itemknn"], config.history_limit()
        )
        dropped = ~keep[1:]
        best = 0.0
        for w in ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)):
            s = w[0] * comps["covisitation"] + w[1] * comps["itemknn"]
            s = s + TIE_BREAK * sources["popularity"] / (sources["popularity"].max(initial=0.0) + 1e-12)
            s[:, dropped] = -np.inf
            best = max(best, ndcg_at_k(validation_ranks(s, validation)))
        scores[f"{min_items},{min_events}"] = round(best, 5)
    chosen = max(grid, key=lambda g: (scores[f"{g[0]},{g[1]}"], g[0], g[1]))
    return FilterChoice(chosen[0], chosen[1], scores, True)
