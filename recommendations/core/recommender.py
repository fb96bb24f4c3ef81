"""``BehaviorRecommender``: the trained bundle of network, co-visitation, item-kNN, transitions, popularity.

``fit`` holds out each shopper's last (novel) step as a time-based validation target, trains the network
with early stopping on it, scores every candidate source on it, picks blend weights there, then refits on
every event. All choices and their validation metrics are recorded in ``report_``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from recommendations.core import artifacts, scoring
from recommendations.core.base import BaseRecommender, NotFittedError
from recommendations.core.candidates import (
    CoVisitation,
    covisitation_matrix,
    history_weights,
    itemknn_matrix,
    transition_matrix,
)
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import (
    EVENT_TYPES,
    EventLog,
    History,
    ItemIndex,
    Sequences,
    build_sequences,
    clean_log,
    histories_to_sequences,
    rare_item_filter,
)
from recommendations.core.metrics import hit_rate_at_k, mrr_at_k, ndcg_at_k
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.propensity import (
    N_FEATURES,
    label_cuts,
    purchase_labels,
    scalar_features,
    truncate,
)
from recommendations.core.trainer import (
    Trainer,
    Validation,
    resolve_device,
    score_sequences,
    seed_everything,
    torch_threads,
)

DAY = 86400.0
COMPONENTS = ("network", "covisitation", "itemknn", "transitions", "recent", "popularity")
# popularity weight in every score: breaks ties among items the sources score alike (mostly zeros)
TIE_BREAK = 1e-9
Progress = Callable[[str, float], None]


def _row_normalise(m: np.ndarray) -> np.ndarray:
    s = m.sum(1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _simplex(k: int, steps: int) -> list[tuple[float, ...]]:
    """Weight vectors of ``k`` components on a grid of ``1/steps`` that sum to 1."""
    out = []
    for c in itertools.product(range(steps + 1), repeat=k - 1):
        if sum(c) <= steps:
            out.append(tuple(x / steps for x in (*c, steps - sum(c))))
    return out


def _csr_tensors(prefix: str, m: sp.csr_matrix) -> dict[str, torch.Tensor]:
    m = m.tocsr()
    return {
        f"{prefix}.indptr": torch.from_numpy(m.indptr.astype(np.int64)),
        f"{prefix}.indices": torch.from_numpy(m.indices.astype(np.int64)),
        f"{prefix}.data": torch.from_numpy(m.data.astype(np.float32)),
        f"{prefix}.shape": torch.tensor(m.shape, dtype=torch.int64),
    }


def _csr_from(prefix: str, t: dict[str, torch.Tensor]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in t[f"{prefix}.shape"].tolist())
    return sp.csr_matrix(
        (t[f"{prefix}.data"].numpy(), t[f"{prefix}.indices"].numpy(), t[f"{prefix}.indptr"].numpy()),
        shape=shape,
    )


class BehaviorRecommender(BaseRecommender):
    """Behaviour network + popularity + co-visitation, blended with weights chosen on validation.

    Parameters
    ----------
    config : NetworkConfig, optional
        Hyperparameters (defaults when omitted).

    Attributes
    ----------
    item_ids_ : list of str
        Catalogue known to the model; column ``j`` of every score matrix is ``item_ids_[j]``.
    network_ : BehaviorNetwork
    covisitation_ : CoVisitation
    transitions_ : scipy.sparse.csr_matrix of shape (n_items, n_items)
    popularity_ : ndarray of shape (n_items,), float64
    blend_weights_ : dict of str to float
        Weight of each component (see :data:`COMPONENTS`) in the final score.
    report_ : dict
        JSON-able: validation metrics of the network, each baseline and the blend, what won and why,
        epochs, seconds, interactions per second, sizes.
    """

    #: shoppers sampled per time cut when training the propensity head (bounds time and memory)
    #: (each example is one forward pass of the encoder: at 20,000 per cut this stage outgrew training on
    #: large shops, while the head has ~1,800 parameters and learns as well from 5,000 per cut)
    max_propensity_examples_per_cut = 5_000

    def __init__(self, config: NetworkConfig | None = None) -> None:
        self.config = config

    # ------------------------------------------------------------------ fitting
    def _cfg(self) -> NetworkConfig:
        return self.config if self.config is not None else NetworkConfig()

    def _event_weights(self) -> dict[str, float]:
        return self._cfg().event_weights

    def _max_length(self) -> int | None:
        return self._cfg().max_sequence_length

    @staticmethod
    def _holdout(seqs: Sequences, mode: str) -> tuple[Sequences, Sequences, np.ndarray, list[int]]:
        """Per shopper, the last (novel) step becomes a validation target; training keeps earlier steps."""
        train = Sequences([], [], [], [])
        v_in = Sequences([], [], [], [])
        targets, rows = [], []
        for r, (u, it, tp, tm) in enumerate(zip(seqs.users, seqs.items, seqs.types, seqs.times, strict=True)):
            t = None
            if len(it) >= 3:
                if mode == "any":
                    t = len(it) - 1
                else:
                    seen_before = {}
                    for k, x in enumerate(it):
                        seen_before.setdefault(int(x), k)
                    for k in range(len(it) - 1, 1, -1):
                        if seen_before[int(it[k])] == k:
                            t = k
                            break
            if t is None:
                train.users.append(u), train.items.append(it), train.types.append(tp), train.times.append(tm)
                continue
            (
                train.users.append(u),
                train.items.append(it[:t]),
                train.types.append(tp[:t]),
                train.times.append(tm[:t]),
            )
            (
                v_in.users.append(u),
                v_in.items.append(it[:t]),
                v_in.types.append(tp[:t]),
                v_in.times.append(tm[:t]),
            )
            targets.append(int(it[t]))
            rows.append(r)
        return train, v_in, np.asarray(targets, dtype=np.int64), rows

    def _new_network(self, n_items: int) -> BehaviorNetwork:
        cfg = self._cfg()
        seed_everything(cfg.random_seed)
        return BehaviorNetwork(
            n_items,
            cfg.embedding_dim,
            cfg.num_layers,
            cfg.num_heads,
            cfg.dropout,
            cfg.max_sequence_length,
            n_scalar=N_FEATURES,
        )

    def _fit_candidates(self, seqs: Sequences, clean: EventLog, index: ItemIndex) -> dict:
        cfg = self._cfg()
        n = len(index)
        type_w = {i + 1: cfg.event_weights.get(t, 0.0) for i, t in enumerate(EVENT_TYPES)}
        cov = covisitation_matrix(
            seqs,
            n,
            window=cfg.covis_window,
            session_gap_hours=cfg.session_gap_hours,
            neighbours=cfg.neighbours,
            types=type_w,
        )
        trans = transition_matrix(seqs, n, neighbours=cfg.neighbours)
        knn = itemknn_matrix(seqs, n, neighbours=cfg.neighbours)
        items = np.concatenate(seqs.items) - 1 if seqs.n_events else np.zeros(0, dtype=np.int64)
        types = np.concatenate(seqs.types) if seqs.n_events else np.zeros(0, dtype=np.int64)
        tw = np.array([0.0] + [cfg.event_weights.get(t, 0.0) for t in EVENT_TYPES])
        pop = np.bincount(items, weights=tw[types], minlength=n).astype(np.float64)
        return {"covisitation": cov, "itemknn": knn, "transitions": trans, "popularity": pop}

    def _components(
        self, seqs: Sequences, logits: np.ndarray | None, cands: dict, names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Row-normalised score of each candidate source, shape (len(seqs), n_items) float32 each."""
        n = len(cands["popularity"])
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name == "network":
                m = _softmax(logits.astype(np.float64))
            elif name == "covisitation":
                m = np.asarray(
                    (history_weights(seqs, n, last=20, decay=0.8) @ cands["covisitation"]).todense()
                )
            elif name == "itemknn":
                hist = history_weights(seqs, n, last=self._cfg().max_sequence_length, decay=1.0)
                m = np.asarray((hist @ cands["itemknn"]).todense())
            elif name == "transitions":
                m = np.asarray((history_weights(seqs, n, last=3, decay=0.3) @ cands["transitions"]).todense())
            elif name == "recent":
                m = history_weights(seqs, n, last=self._cfg().max_sequence_length, decay=0.8).toarray()
            elif name == "popularity":
                m = np.tile(cands["popularity"], (len(seqs), 1))
            else:
                raise ValueError(name)
            out[name] = _row_normalise(np.asarray(m, dtype=np.float64)).astype(np.float32)
        return out

    def _choose_blend(
        self, comps: dict[str, np.ndarray], validation: Validation, popularity: np.ndarray
    ) -> tuple[dict, dict]:
        """Validation metrics of each source alone and of the best blend (simplex grid, then local moves)."""
        names = list(comps)
        stack = torch.from_numpy(np.stack([comps[n] for n in names]))
        tie = torch.from_numpy(
            (TIE_BREAK * popularity / (popularity.max(initial=0.0) + 1e-12)).astype(np.float32)
        )
        metrics: dict[str, dict] = {}
        cache: dict[tuple, float] = {}

        # tie-break and history mask folded into one additive base, built once: each candidate weight
        # vector then costs one weighted sum and one comparison pass (same ranks as validation_ranks)
        base = tie[None, :].repeat(stack.shape[1], 1)
        if validation.mask_history:
            rows, cols = validation.history_mask()
            base[rows, cols] = float("-inf")
        rows_all = torch.arange(stack.shape[1])
        tgt = torch.from_numpy(validation.targets - 1)

        def evaluate(weights) -> tuple[float, np.ndarray]:
            s = torch.tensordot(torch.tensor(weights, dtype=torch.float32), stack, dims=1)
            s += base
            t = s[rows_all, tgt]
            ranks = ((s >= t[:, None]).sum(1) - 1).numpy().astype(np.int64)
            cache[tuple(round(w, 4) for w in weights)] = ndcg_at_k(ranks)
            return ndcg_at_k(ranks), ranks

        for k, name in enumerate(names):
            w = [0.0] * len(names)
            w[k] = 1.0
            _, ranks = evaluate(w)
            metrics[name] = self._metrics(ranks)
        best_w, best = None, -1.0
        steps = 10 if len(_simplex(len(names), 10)) <= 400 else 5
        grid = _simplex(len(names), steps) if self._cfg().blend else []
        for w in grid:
            if "popularity" in names and w[names.index("popularity")] > 0.3:
                continue  # popularity mostly breaks ties; large weights never help and cost time
            score, _ = evaluate(w)
            if score > best + 1e-12:
                best, best_w = score, w
        # local refinement: move 0.05 of weight between two sources while it helps
        for _ in range(10 if best_w is not None else 0):
            improved = False
            for a, b in itertools.permutations(range(len(names)), 2):
                w = list(best_w)
                if w[a] < 0.05 - 1e-9:
                    continue
                w[a], w[b] = round(w[a] - 0.05, 4), round(w[b] + 0.05, 4)
                key = tuple(round(x, 4) for x in w)
                score = cache[key] if key in cache else evaluate(w)[0]
                if score > best + 1e-12:
                    best, best_w, improved = score, tuple(w), True
            if not improved:
                break
        if best_w is None:
            best_w = tuple(1.0 if n == "network" else 0.0 for n in names)
        _, ranks = evaluate(best_w)
        metrics["blend"] = self._metrics(ranks)
        return metrics, dict(zip(names, best_w, strict=True))

    @staticmethod
    def _metrics(ranks: np.ndarray) -> dict:
        return {
            "HR@10": round(hit_rate_at_k(ranks), 5),
            "NDCG@10": round(ndcg_at_k(ranks), 5),
            "MRR@10": round(mrr_at_k(ranks), 5),
        }

    def fit(self, log: EventLog, *, progress: Progress | None = None) -> BehaviorRecommender:
        """Clean ``log``, train network and candidate sources, choose the blend, train the propensity head.

        Parameters
        ----------
        log : EventLog
        progress : callable (stage: str, fraction: float) -> None, optional

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When no sequence with at least two steps remains after cleaning.
        """
        cfg = self._cfg()
        t_start = time.perf_counter()
        # wall seconds from each stage's first progress call to the next stage's ("refit" includes the
        # final candidate tables, "propensity" the head); recorded in the report
        stage_seconds: dict[str, float] = {}
        current = ["", t_start]

        def report_progress(stage: str, fraction: float) -> None:
            now = time.perf_counter()
            if stage != current[0]:
                if current[0]:
                    stage_seconds[current[0]] = round(
                        stage_seconds.get(current[0], 0.0) + now - current[1], 2
                    )
                current[:] = [stage, now]
            if progress is not None:
                progress(stage, fraction)

        report_progress("prepare", 0.0)
        clean = rare_item_filter(clean_log(log, cfg.event_weights), cfg.min_item_users)
        index = ItemIndex(sorted(set(clean.items)))
        seqs = build_sequences(clean, index, cfg.event_weights, min_events=max(cfg.min_user_events, 1))
        if not len(seqs) or max(len(s) for s in seqs.items) < 2:
            raise ValueError("not enough data: no shopper has two usable events after cleaning")
        n_items = len(index)
        device = resolve_device(cfg.device)
        train_seqs, v_inputs, v_targets, _ = self._holdout(seqs, cfg.mode)
        if len(v_targets) > cfg.max_validation_users:
            pick = np.sort(
                np.random.default_rng(cfg.random_seed).choice(
                    len(v_targets), cfg.max_validation_users, replace=False
                )
            )
            v_inputs, v_targets = v_inputs.take(pick), v_targets[pick]
        validation = Validation(v_inputs, v_targets, mask_history=cfg.mode == "novel")
        report: dict = {
            "n_events": len(log),
            "n_clean_events": len(clean),
            "n_users": len(seqs),
            "n_items": n_items,
            "n_steps": seqs.n_events,
            "validation_users": len(v_targets),
            "mode": cfg.mode,
            "device": str(device),
        }
        report_progress("prepare", 1.0)

        network = self._new_network(n_items)
        has_valid = len(v_targets) > 0
        report_progress("train", 0.0)
        result = Trainer(cfg, report_progress, "train").fit(
            network, train_seqs, validation if has_valid else None
        )
        report.update(
            epochs=result.best_epoch,
            epochs_run=result.epochs_run,
            interactions_per_second=round(result.interactions_per_second, 1),
            cpu_us_per_interaction=round(result.cpu_us_per_interaction, 2),
            positions_per_epoch=result.positions_per_epoch,
            train_history=result.history,
            train_seconds=round(result.seconds, 2),
        )
        names = ["network", "covisitation", "itemknn", "transitions", "popularity"]
        if cfg.mode == "any":
            names.insert(4, "recent")
        if has_valid:
            report_progress("blend", 0.0)
            cands = self._fit_candidates(train_seqs, clean, index)
            with torch_threads(cfg.threads):
                logits, _ = score_sequences(network.cpu(), v_inputs, torch.device("cpu"))
                comps = self._components(v_inputs, logits, cands, names)
                val_metrics, weights = self._choose_blend(comps, validation, cands["popularity"])
            best_single = max(names, key=lambda n: val_metrics[n]["NDCG@10"])
            report["validation"] = val_metrics
            if not cfg.blend:
                weights = {n: float(n == "network") for n in names}
                report["selected"] = "network"
                report["reason"] = "blending disabled in the configuration: network alone"
            else:
                use_blend = val_metrics["blend"]["NDCG@10"] > val_metrics[best_single]["NDCG@10"]
                if not use_blend:
                    weights = {n: float(n == best_single) for n in names}
                selected = "blend" if use_blend else best_single
                report["selected"] = selected
                report["reason"] = (
                    f"highest validation NDCG@10: {selected} {val_metrics[selected]['NDCG@10']}"
                    f" vs network alone {val_metrics['network']['NDCG@10']}"
                    + (
                        f" and best single source {best_single} {val_metrics[best_single]['NDCG@10']}"
                        if use_blend
                        else ""
                    )
                )
            report_progress("blend", 1.0)
        else:
            weights = {n: float(n == "network") for n in names}
            report["selected"] = "network"
            report["reason"] = "no shopper has enough steps for a validation target; network alone"
        self.blend_weights_ = {n: float(weights.get(n, 0.0)) for n in COMPONENTS}
        report["blend_weights"] = self.blend_weights_

        if cfg.refit_full and has_valid and result.best_epoch > 0:
            # the validation targets are the newest, most useful steps: retrain on everything
            report_progress("refit", 0.0)
            if cfg.refit_epochs > 0:
                # continue from the early-stopped weights: one pass over every sequence teaches the newest
                # steps at the cost of one epoch instead of best_epoch epochs from scratch
                refit = Trainer(cfg, report_progress, "refit").fit(
                    network, seqs, None, epochs=cfg.refit_epochs
                )
            else:
                network = self._new_network(n_items)
                refit = Trainer(cfg, report_progress, "refit").fit(
                    network, seqs, None, epochs=result.best_epoch
                )
            report["refit_seconds"] = round(refit.seconds, 2)
            report["refit_epochs"] = refit.epochs_run
        self.network_ = network.cpu().eval()
        cands = self._fit_candidates(seqs, clean, index)
        self.index_ = index
        self.item_ids_ = list(index.item_ids)
        self.transitions_ = cands["transitions"]
        self.itemknn_ = cands["itemknn"]
        self.popularity_ = cands["popularity"]
        buy_w = {t: (1.0 if t in ("add_to_cart", "purchase") else 0.0) for t in EVENT_TYPES}
        buys = build_sequences(clean_log(clean, buy_w), index, buy_w)
        together = covisitation_matrix(
            buys,
            n_items,
            window=max(cfg.covis_window, 10),
            session_gap_hours=cfg.session_gap_hours,
            neighbours=cfg.neighbours,
        )
        self.covisitation_ = CoVisitation(self.item_ids_, cands["covisitation"], together)
        self._fit_trending(clean, index)
        report_progress("propensity", 0.0)
        report["propensity"] = self._fit_propensity(log, report_progress)
        report_progress("done", 1.0)
        report["stage_seconds"] = stage_seconds
        report["seconds"] = round(time.perf_counter() - t_start, 2)
        self.report_ = report
        return self

    def _fit_trending(self, clean: EventLog, index: ItemIndex) -> None:
        """Event weights aggregated per (item, day) for trending scores at any request time."""
        cfg = self._cfg()
        keep = np.array([i in index.index for i in clean.items], dtype=bool)
        cols = np.array([index.index[i] - 1 for i in clean.items[keep]], dtype=np.int64)
        days = np.floor(clean.timestamps[keep] / DAY).astype(np.int64)
        w = np.array([cfg.event_weights.get(t, 0.0) for t in clean.event_types[keep]], dtype=np.float64)
        if len(cols):
            key = cols * (days.max() - days.min() + 1) + (days - days.min())
            uniq, inv = np.unique(key, return_inverse=True)
            sums = np.bincount(inv, weights=w)
            span = days.max() - days.min() + 1
            self.trend_cols_ = (uniq // span).astype(np.int64)
            self.trend_days_ = (uniq % span + days.min()).astype(np.int64)
            self.trend_weights_ = sums
        else:
            self.trend_cols_ = np.zeros(0, dtype=np.int64)
            self.trend_days_ = np.zeros(0, dtype=np.int64)
            self.trend_weights_ = np.zeros(0)

    def trending(self, now: float) -> np.ndarray:
        """Trending score of every item at ``now`` (events of later days ignored), shape (n_items,)."""
        self._check_fitted()
        hl = self._cfg().trending_half_life_days * DAY
        mid = self.trend_days_ * DAY + DAY / 2
        keep = self.trend_days_ * DAY <= now
        decay = np.power(0.5, np.maximum(now - mid[keep], 0.0) / hl)
        return np.bincount(
            self.trend_cols_[keep], weights=self.trend_weights_[keep] * decay, minlength=len(self.item_ids_)
        )

    # ------------------------------------------------------------------ propensity
    def _propensity_examples(self, histories: list, now: float) -> tuple[np.ndarray, np.ndarray]:
        hist = truncate(histories, now)
        x = scalar_features(hist, now)
        seqs = histories_to_sequences(hist, self.index_, self._cfg().event_weights, self._max_length())
        _, hidden = score_sequences(self.network_, seqs, torch.device("cpu"), with_logits=False)
        return hidden, x

    def _fit_propensity(self, log: EventLog, progress: Progress) -> dict:
        """Time-cut labels: features strictly before each cut, label = purchase in [cut, cut + horizon)."""
        cfg = self._cfg()
        horizon = cfg.propensity_horizon_days * DAY
        self.propensity_mean_ = np.zeros(N_FEATURES, dtype=np.float32)
        self.propensity_std_ = np.ones(N_FEATURES, dtype=np.float32)
        self.propensity_base_rate_ = 0.0
        self.has_propensity_ = False
        if not len(log) or horizon <= 0:
            return {"trained": False, "reason": "empty log or no horizon"}
        all_log = log if log.is_bot is None else log.subset(~log.is_bot)
        by_user = all_log.histories()
        users = list(by_user)
        hists = [by_user[u] for u in users]
        t_min, t_max = float(all_log.timestamps.min()), float(all_log.timestamps.max())
        cuts, horizon = label_cuts(t_min, t_max, horizon)  # a shorter window on a short log
        hs, xs, ys, groups = [], [], [], []
        rng = np.random.default_rng(cfg.random_seed)
        user_group = rng.random(len(users)) < 0.2  # held-out shoppers for early stopping
        # flat (owner, timestamp) arrays built once, so each cut's "active shopper" test is vectorised
        lens = np.fromiter((len(h) for h in hists), dtype=np.int64, count=len(hists))
        owner = np.repeat(np.arange(len(hists)), lens)
        stamps = np.fromiter((ts for h in hists for _, _, ts in h), dtype=np.float64, count=int(lens.sum()))
        first = np.array([h[0][2] if h else np.inf for h in hists], dtype=np.float64)
        for c in cuts:
            recent = np.zeros(len(hists), dtype=bool)
            recent[owner[(stamps >= c - 30 * DAY) & (stamps < c)]] = True
            active = np.flatnonzero(recent & (first < c) & (first >= c - 30 * DAY * 12)).tolist()
            if not active:
                continue
            if len(active) > self.max_propensity_examples_per_cut:
                active = sorted(
                    rng.choice(active, self.max_propensity_examples_per_cut, replace=False).tolist()
                )
            sub = [hists[k] for k in active]
            hs.append(sub)
            xs.append(c)
            ys.append(purchase_labels(sub, c, c + horizon))
            groups.append(user_group[active])
        if not ys or not np.concatenate(ys).sum() or np.concatenate(ys).all():
            return {
                "trained": False,
                "reason": "no purchase labels of both classes before the newest cut",
                "cuts": len(cuts),
            }
        for k, (sub, c) in enumerate(zip(hs, xs, strict=True)):
            hs[k], xs[k] = self._propensity_examples(sub, c)
        H, X, Y, G = (np.concatenate(a) for a in (hs, xs, ys, groups))
        self.propensity_mean_ = X.mean(0).astype(np.float32)
        self.propensity_std_ = (X.std(0) + 1e-6).astype(np.float32)
        Z = (X - self.propensity_mean_) / self.propensity_std_
        self.propensity_base_rate_ = float(Y.mean())
        if G.all() or not G.any() or not Y[G].sum() or Y[G].all():
            G = np.zeros(len(Y), dtype=bool)
            G[rng.choice(len(Y), max(1, len(Y) // 5), replace=False)] = True
        net = self.network_
        th, tz, ty = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in (H, Z, Y))
        tr, va = torch.from_numpy(~G), torch.from_numpy(G)
        from recommendations.core.metrics import roc_auc

        # two candidates, chosen on held-out shoppers: a linear model of the scalar features alone
        # (the MLP on the hidden state switched off), and the full head with the network's state
        variants = {}
        for variant in ("scalars", "network"):
            loss, state = self._train_propensity_head(
                net, th, tz, ty, tr, va, use_hidden=variant == "network"
            )
            with torch.no_grad():
                pv = torch.sigmoid(net.propensity_logit(th[va], tz[va])).numpy()
            variants[variant] = {
                "valid_logloss": round(loss, 5),
                "valid_roc_auc": round(roc_auc(Y[G], pv), 4),
                "state": state,
            }
        # ranking shoppers is what the head is for: choose by held-out ROC-AUC, log-loss breaks ties
        chosen = max(
            variants,
            key=lambda v: (
                np.nan_to_num(variants[v]["valid_roc_auc"], nan=0.5),
                -variants[v]["valid_logloss"],
            ),
        )
        net.load_state_dict({**net.state_dict(), **variants[chosen]["state"]})
        net.eval()
        self.has_propensity_ = True
        progress("propensity", 1.0)
        return {
            "trained": True,
            "cuts": len(cuts),
            "examples": len(Y),
            "positive_rate": round(float(Y.mean()), 4),
            "horizon_days": round(horizon / DAY, 4),
            "configured_horizon_days": cfg.propensity_horizon_days,
            "selected": chosen,
            "reason": "higher ROC-AUC on held-out shoppers (time-cut labels before the newest event)",
            "validation": {v: {k: x for k, x in d.items() if k != "state"} for v, d in variants.items()},
        }

    def _train_propensity_head(self, net, th, tz, ty, tr, va, *, use_hidden: bool) -> tuple[float, dict]:
        """Full-batch Adam on the propensity head with early stopping on held-out log-loss."""
        cfg = self._cfg()
        seed_everything(cfg.random_seed)
        for p in net.prop_head.modules():
            if isinstance(p, torch.nn.Linear):
                p.reset_parameters()
        net.prop_linear.reset_parameters()
        params = list(net.prop_linear.parameters())
        last = net.prop_head[-1]
        if use_hidden:
            params += list(net.prop_head.parameters())
        else:
            with torch.no_grad():  # the MLP contributes exactly 0
                last.weight.zero_()
                last.bias.zero_()
        opt = torch.optim.Adam(params, lr=3e-3, weight_decay=1e-3)
        best, best_state, bad = math.inf, None, 0
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        # index the fixed inputs once (boolean indexing copies), and build the head's input once:
        # the hidden state is a fixed feature here, so the per-step work is two small matmuls
        ztr, zva, ytr, yva = tz[tr], tz[va], ty[tr], ty[va]
        xtr, xva = torch.cat([th[tr], ztr], dim=1), torch.cat([th[va], zva], dim=1)

        def logit(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return net.prop_head(x).squeeze(1) + net.prop_linear(z).squeeze(1)

        # one thread: the head's ops are tiny (B x 16), and on a shared CPU the OpenMP barriers of a
        # second thread cost more than the work (measured 6 ms vs 37 ms per step at load 6 on 2 cores)
        with torch_threads(1):
            for _epoch in range(400):
                net.prop_head.train()
                loss = bce(logit(xtr, ztr), ytr)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    net.prop_head.eval()
                    v = float(bce(logit(xva, zva), yva))
                if v < best - 1e-5:
                    best, bad = v, 0
                    best_state = {k: t.clone() for k, t in net.state_dict().items() if k.startswith("prop_")}
                else:
                    bad += 1
                    if bad >= 30:
                        break
        if best_state:
            net.load_state_dict({**net.state_dict(), **best_state})
        return best, best_state or {}

    def propensity(self, histories: Sequence[History], now: float) -> np.ndarray:
        """Probability that each shopper buys within the head's label window after ``now``.

        The window is ``propensity_horizon_days``, or shorter when the training log was
        (``report_["propensity"]["horizon_days"]``, see :func:`~recommendations.core.propensity.label_cuts`).

        Parameters
        ----------
        histories : sequence of History
            Only events strictly before ``now`` are used.
        now : float
            Unix seconds.

        Returns
        -------
        ndarray of shape (len(histories),), float64 in [0, 1]
            The training base rate for every shopper when no head could be trained.
        """
        self._check_fitted()
        histories = list(histories)
        if not self.has_propensity_:
            return np.full(len(histories), self.propensity_base_rate_, dtype=np.float64)
        h, x = self._propensity_examples(histories, now)
        z = (x - self.propensity_mean_) / self.propensity_std_
        with torch.no_grad():
            logit = self.network_.propensity_logit(
                torch.from_numpy(h), torch.from_numpy(z.astype(np.float32))
            )
        return torch.sigmoid(logit).double().numpy()

    # ------------------------------------------------------------------ scoring
    def _score(self, seqs: Sequences, now: float | None) -> np.ndarray:
        return self._score_tensor(seqs, now).numpy().copy()

    def _blend_arguments(self, now: float | None) -> tuple[list[str], dict]:
        """Component names with a positive weight and the keyword arguments of the scoring kernels."""
        w = self.blend_weights_
        names = [n for n in COMPONENTS if w.get(n, 0.0) > 0]
        pop = self.trending(now) if now is not None else self.popularity_
        pop = pop / (pop.max(initial=0.0) + 1e-12)
        return names, {
            "network": self.network_,
            "sources": {
                "covisitation": self.covisitation_.similar_matrix,
                "itemknn": self.itemknn_,
                "transitions": self.transitions_,
            },
            "popularity": self.popularity_,
            "fallback": pop,
            "tie_break": TIE_BREAK,
            "max_length": self._cfg().max_sequence_length,
        }

    def _score_tensor(self, seqs: Sequences, now: float | None) -> torch.Tensor:
        """Blended scores (len(seqs), n_items) float64, a reused buffer for large batches.

        The same numbers as ``_components`` blended with ``blend_weights_``: empty histories get
        popularity (trending at ``now``); elsewhere popularity only breaks ties.
        """
        names, arguments = self._blend_arguments(now)
        return scoring.blend_scores(seqs, self.blend_weights_, names, **arguments)

    def rank_sequences(
        self,
        seqs: Sequences,
        n: int,
        *,
        exclude: tuple[np.ndarray, np.ndarray] | None = None,
        now: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` columns of every encoded sequence, best first (ties: lower column first).

        The ranking of ``_score`` with the excluded cells at ``-inf``, computed a few rows at a
        time (``scoring.blend_top_k``) without the whole score matrix.

        Parameters
        ----------
        seqs : Sequences
            Encoded histories (``histories_to_sequences`` or ``batch.encode_columns``).
        exclude : (rows, columns) int64 arrays, optional
            Cells never recommended (column = dense item index - 1).

        Returns
        -------
        idx : ndarray of shape (len(seqs), min(n, n_items)), int64
        vals : ndarray of the same shape, float64; ``-inf`` marks padding past the finite scores
        """
        self._check_fitted()
        names, arguments = self._blend_arguments(now)
        return scoring.blend_top_k(seqs, self.blend_weights_, names, n, exclude=exclude, **arguments)

    def _rank(
        self, seqs: Sequences, n: int, exclude: tuple[np.ndarray, np.ndarray], now: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.rank_sequences(seqs, n, exclude=exclude, now=now)

    def similar_items(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Co-visited items, filled up with nearest items in the network's embedding; unknown item -> []."""
        self._check_fitted()
        j = self.index_.index.get(str(item))
        if j is None or n <= 0:
            return []
        out = self.covisitation_.similar(item, n)
        if len(out) < n:
            emb = self.item_embeddings()
            norm = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)
            sims = norm @ norm[j - 1]
            taken = {k for k, _ in out} | {item}
            scale = min((s for _, s in out), default=1.0)
            for c in np.argsort(-sims, kind="stable"):
                key = self.item_ids_[c]
                if key in taken:
                    continue
                out.append((key, float(max(sims[c], 0.0) * scale * 0.5)))
                if len(out) >= n:
                    break
        return out

    def bought_together(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """Items carted or bought in the same sessions as ``item``; unknown item -> []."""
        self._check_fitted()
        return self.covisitation_.bought_together(item, n)

    def embed_users(self, histories: Sequence[History]) -> np.ndarray:
        """Last hidden state of the network per shopper.

        Returns
        -------
        ndarray of shape (len(histories), embedding_dim), float32 (zeros for empty histories)
        """
        self._check_fitted()
        seqs = histories_to_sequences(
            list(histories), self.index_, self._cfg().event_weights, self._max_length()
        )
        _, hidden = score_sequences(self.network_, seqs, torch.device("cpu"), with_logits=False)
        empty = np.array([len(s) == 0 for s in seqs.items], dtype=bool)
        hidden[empty] = 0.0
        return hidden.astype(np.float32)

    def item_embeddings(self) -> np.ndarray:
        """Item embedding matrix, shape (n_items, embedding_dim) float32; rows follow ``item_ids_``."""
        self._check_fitted()
        return self.network_.item_weights().detach().cpu().numpy().astype(np.float32).copy()

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> dict:
        """Write weights and metadata.json into ``directory`` atomically; returns the metadata."""
        self._check_fitted()
        tensors = {f"network.{k}": v for k, v in self.network_.state_dict().items()}
        tensors.update(_csr_tensors("covisitation", self.covisitation_.similar_matrix))
        tensors.update(_csr_tensors("together", self.covisitation_.together_matrix))
        tensors.update(_csr_tensors("transitions", self.transitions_))
        tensors.update(_csr_tensors("itemknn", self.itemknn_))
        tensors["popularity"] = torch.from_numpy(np.asarray(self.popularity_, dtype=np.float64))
        tensors["trend.cols"] = torch.from_numpy(self.trend_cols_)
        tensors["trend.days"] = torch.from_numpy(self.trend_days_)
        tensors["trend.weights"] = torch.from_numpy(np.asarray(self.trend_weights_, dtype=np.float64))
        tensors["propensity.mean"] = torch.from_numpy(self.propensity_mean_)
        tensors["propensity.std"] = torch.from_numpy(self.propensity_std_)
        meta = {
            "class": type(self).__name__,
            "config": self._cfg().to_dict(),
            "item_ids": self.item_ids_,
            "blend_weights": self.blend_weights_,
            "report": self.report_,
            "has_propensity": bool(self.has_propensity_),
            "propensity_base_rate": float(self.propensity_base_rate_),
        }
        return artifacts.save_artifact(directory, tensors, meta)

    @classmethod
    def load(cls, directory: str | Path) -> BehaviorRecommender:
        """Load an artefact written by :meth:`save`.

        Raises
        ------
        recommendations.core.artifacts.ArtifactError
            Missing or corrupt files, checksum mismatch, pickled payloads, or inconsistent contents.
        """
        tensors, meta = artifacts.load_artifact(directory)
        try:
            self = cls(NetworkConfig.from_dict(meta["config"]))
            item_ids = [str(i) for i in meta["item_ids"]]
            self.index_ = ItemIndex(item_ids)
            net = self._new_network(len(item_ids))
            net.load_state_dict(
                {k[len("network.") :]: v for k, v in tensors.items() if k.startswith("network.")}
            )
            self.network_ = net.eval()
            self.covisitation_ = CoVisitation(
                item_ids, _csr_from("covisitation", tensors), _csr_from("together", tensors)
            )
            self.transitions_ = _csr_from("transitions", tensors)
            self.itemknn_ = _csr_from("itemknn", tensors)
            self.popularity_ = tensors["popularity"].numpy()
            self.trend_cols_ = tensors["trend.cols"].numpy()
            self.trend_days_ = tensors["trend.days"].numpy()
            self.trend_weights_ = tensors["trend.weights"].numpy()
            self.propensity_mean_ = tensors["propensity.mean"].numpy()
            self.propensity_std_ = tensors["propensity.std"].numpy()
            self.has_propensity_ = bool(meta["has_propensity"])
            self.propensity_base_rate_ = float(meta["propensity_base_rate"])
            self.blend_weights_ = {k: float(v) for k, v in meta["blend_weights"].items()}
            self.report_ = meta["report"]
            self.item_ids_ = item_ids
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise artifacts.ArtifactError(f"artefact in {directory} is inconsistent: {exc}") from exc
        return self


__all__ = ["BehaviorRecommender", "NotFittedError"]
