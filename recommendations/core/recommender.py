"""``BehaviorRecommender``: the trained bundle of network, co-visitation, item-kNN, transitions, popularity.

``fit`` holds out each shopper's last (novel) step as a time-based validation target, trains the network
with early stopping on it, scores every candidate source on it, picks blend weights there, then refits on
every event. All choices and their validation metrics are recorded in ``report_``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from recommendations.core import artifacts, scoring, selection
from recommendations.core.base import BaseRecommender, NotFittedError
from recommendations.core.candidates import (
    CoVisitation,
    covisitation_matrix,
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
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.propensity import N_FEATURES
from recommendations.core.propensity_head import PropensityHead
from recommendations.core.trainer import (
    Trainer,
    TrainResult,
    Validation,
    resolve_device,
    score_sequences,
    seed_everything,
    torch_threads,
)

DAY = 86400.0
COMPONENTS = ("network", "covisitation", "itemknn", "transitions", "recent", "popularity")
# popularity weight in every score: breaks ties among items the sources score alike (mostly zeros)
TIE_BREAK = selection.TIE_BREAK
Progress = Callable[[str, float], None]


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

    def __init__(self, config: NetworkConfig | None = None) -> None:
        self.config = config

    # ------------------------------------------------------------------ fitting
    def _cfg(self) -> NetworkConfig:
        """The resolved configuration after ``fit`` (every searched choice filled in), else the given one."""
        resolved = getattr(self, "config_", None)
        if resolved is not None:
            return resolved
        return self.config if self.config is not None else NetworkConfig()

    def _event_weights(self) -> dict[str, float]:
        return self._cfg().event_weights

    def _max_length(self) -> int | None:
        return self._cfg().max_sequence_length

    def _new_network(self, n_items: int, dropout: float | None = None) -> BehaviorNetwork:
        cfg = self._cfg()
        seed_everything(cfg.random_seed)
        return BehaviorNetwork(
            n_items,
            cfg.embedding_dim,
            cfg.num_layers,
            cfg.num_heads,
            float(dropout if dropout is not None else (cfg.dropout if cfg.dropout is not None else 0.2)),
            cfg.max_sequence_length,
            n_scalar=N_FEATURES,
        )

    def _fit_sources(self, seqs: Sequences, n: int) -> dict:
        """Co-visitation, item-kNN, transitions and popularity fitted on ``seqs`` (``n`` items)."""
        cfg = self._cfg()
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
        return selection.components(seqs, logits, cands, names, self._cfg().max_sequence_length)

    def _train_network(
        self,
        train: Sequences,
        validation: Validation | None,
        n_items: int,
        progress: Progress,
    ) -> tuple[BehaviorNetwork, TrainResult, dict]:
        """Train the network; with several dropout candidates, the one best on validation.

        The candidates train on at most ``search_users`` shoppers (a fixed sample); the winner is then
        trained on everyone unless the sample already was everyone.
        """
        cfg = self._cfg()
        grid = cfg.dropout_grid if cfg.dropout is None else (float(cfg.dropout),)
        if len(grid) == 1 or validation is None or not len(validation.targets):
            p = grid[0] if cfg.dropout is None else float(cfg.dropout)
            network = self._new_network(n_items, p)
            result = Trainer(replace(cfg, dropout=p), progress, "train").fit(network, train, validation)
            return network, result, {"value": p, "searched": False}
        sample = selection.sample_rows(len(train), cfg.search_users, cfg.random_seed)
        sampled_users = {train.users[r] for r in sample}
        v_rows = [k for k, u in enumerate(validation.inputs.users) if u in sampled_users]
        part = train.take(sample) if len(sample) < len(train) else train
        part_valid = (
            Validation(validation.inputs.take(v_rows), validation.targets[v_rows], validation.mask_history)
            if len(v_rows) < len(validation.targets)
            else validation
        )
        tried: dict[str, dict] = {}
        best: tuple[float, float, BehaviorNetwork, TrainResult] | None = None
        for k, p in enumerate(grid):
            network = self._new_network(n_items, p)

            def step(stage: str, fraction: float, k: int = k) -> None:
                progress("search", (k + fraction) / len(grid))

            result = Trainer(replace(cfg, dropout=p), step, "search").fit(network, part, part_valid)
            tried[f"{p:g}"] = {"NDCG@10": round(result.best_ndcg, 5), "epochs": result.best_epoch}
            if best is None or result.best_ndcg > best[0] + 1e-12:
                best = (result.best_ndcg, p, network, result)
        assert best is not None
        _, p, network, result = best
        if part is not train:
            network = self._new_network(n_items, p)
            result = Trainer(replace(cfg, dropout=p), progress, "train").fit(network, train, validation)
        return (
            network,
            result,
            {"value": p, "searched": True, "validation": tried, "sample_users": len(sample)},
        )

    def fit(
        self, log: EventLog, *, progress: Progress | None = None, propensity: bool = True
    ) -> BehaviorRecommender:
        """Clean ``log``, make every open choice on validation, train, and fit the candidate sources.

        Parameters
        ----------
        log : EventLog
        progress : callable (stage: str, fraction: float) -> None, optional
        propensity : bool
            Also train the purchase-propensity head (a caller that calls :meth:`refit` next skips it here).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When no sequence with at least two steps remains after cleaning.
        """
        self.__dict__.pop("config_", None)
        cfg = self._cfg()
        t_start = time.perf_counter()
        stage_seconds: dict[str, float] = {}
        report_progress = self._stage_clock(stage_seconds, progress, t_start)

        report_progress("prepare", 0.0)
        cleaned = clean_log(log, cfg.event_weights)
        all_index = ItemIndex(sorted(set(cleaned.items)))
        all_seqs = build_sequences(cleaned, all_index, cfg.event_weights, min_events=1)
        filters = selection.choose_filters(all_seqs, len(all_index), cfg, self._fit_sources)
        cfg = replace(cfg, min_item_users=filters.min_item_users, min_user_events=filters.min_user_events)
        self.config_ = cfg
        clean = rare_item_filter(cleaned, cfg.min_item_users)
        index = ItemIndex(sorted(set(clean.items)))
        seqs = build_sequences(clean, index, cfg.event_weights, min_events=cfg.min_user_events)
        lengths = np.fromiter((len(s) for s in seqs.items), dtype=np.int64, count=len(seqs))
        cfg = self.config_ = replace(cfg, max_sequence_length=cfg.length_for(lengths))
        if not len(seqs) or max(len(s) for s in seqs.items) < 2:
            raise ValueError("not enough data: no shopper has two usable events after cleaning")
        n_items = len(index)
        device = resolve_device(cfg.device)
        target_mode = "any" if cfg.mode == "any" else "novel"
        train_seqs, v_inputs, v_targets, _ = selection.holdout(seqs, target_mode)
        pick = selection.sample_rows(len(v_targets), cfg.max_validation_users, cfg.random_seed)
        v_inputs, v_targets = v_inputs.take(pick), v_targets[pick]
        validation = Validation(v_inputs, v_targets, mask_history=target_mode == "novel")
        choices: dict[str, dict] = {
            "filters": {
                "value": {"min_item_users": cfg.min_item_users, "min_user_events": cfg.min_user_events},
                "searched": filters.searched,
                "validation": filters.validation,
            }
        }
        report: dict = {
            "n_events": len(log),
            "n_clean_events": len(clean),
            "n_users": len(seqs),
            "n_items": n_items,
            "n_steps": seqs.n_events,
            "validation_users": len(v_targets),
            "mode": cfg.mode,
            "device": str(device),
            "choices": choices,
        }
        choices["max_sequence_length"] = {
            "value": cfg.max_sequence_length,
            "searched": self.config is None or self.config.max_sequence_length is None,
            "reason": "90th percentile of the shoppers' history lengths, within the configured range",
        }
        report_progress("prepare", 1.0)

        has_valid = len(v_targets) > 0
        network, result, choices["dropout"] = self._train_network(
            train_seqs, validation if has_valid else None, n_items, report_progress
        )
        cfg = self.config_ = replace(cfg, dropout=choices["dropout"]["value"])
        choices["batch_size"] = {
            "value": result.batch_size,
            "searched": self.config is None or self.config.batch_size is None,
        }
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
            cands = self._fit_sources(train_seqs, n_items)
            with torch_threads(cfg.threads):
                logits, _ = score_sequences(network.cpu(), v_inputs, torch.device("cpu"))
                comps = self._components(v_inputs, logits, cands, names)
                weights, report_blend = self._choose_weights(comps, validation, cands["popularity"])
                report.update(report_blend)
                choices["blend"] = {"value": weights, "searched": cfg.blend, "reason": report_blend["reason"]}
                seen_weights = weights
                if cfg.mode == "auto":
                    seen_weights, choices["mode"] = self._choose_repeats(seqs, cands, network, names)
            report_progress("blend", 1.0)
        else:
            weights = seen_weights = {n: float(n == "network") for n in names}
            report["selected"] = "network"
            report["reason"] = "no shopper has enough steps for a validation target; network alone"
        # lists that may show what the shopper has seen (the default) and lists where it is excluded
        self.blend_weights_ = {n: float(seen_weights.get(n, 0.0)) for n in COMPONENTS}
        self.novel_weights_ = {n: float(weights.get(n, 0.0)) for n in COMPONENTS}
        report["blend_weights"] = self.blend_weights_
        report["novel_weights"] = self.novel_weights_

        if cfg.refit_full and has_valid and result.best_epoch > 0:
            # the validation targets are the newest, most useful steps: train on everything too
            report_progress("refit", 0.0)
            if cfg.refit_epochs > 0:
                refit = self._continue_training(network, seqs, cfg, report_progress)
            else:  # a fresh network for the early-stopped epoch count (twice the time, no continuation)
                network = self._new_network(n_items, cfg.dropout)
                refit = Trainer(cfg, report_progress, "refit").fit(
                    network, seqs, None, epochs=result.best_epoch
                )
            report["refit_seconds"] = round(refit.seconds, 2)
            report["refit_epochs"] = refit.epochs_run
        self._finalize(log, clean, index, seqs, network, report, report_progress, propensity=propensity)
        report["stage_seconds"] = stage_seconds
        report["seconds"] = round(time.perf_counter() - t_start, 2)
        self.report_ = report
        return self

    @staticmethod
    def _stage_clock(stage_seconds: dict[str, float], progress: Progress | None, t_start: float) -> Progress:
        """A progress callback that also records wall seconds per stage into ``stage_seconds``."""
        current: list = ["", t_start]

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

        return report_progress

    def _choose_weights(
        self, comps: dict[str, np.ndarray], validation: Validation, popularity: np.ndarray
    ) -> tuple[dict[str, float], dict]:
        """Blend weights chosen on validation; the network keeps a weight only where it helps.

        Returns the weights and the report entries (``validation``, ``selected``, ``reason``).
        """
        cfg = self._cfg()
        names = list(comps)
        val_metrics, weights = selection.choose_blend(comps, validation, popularity, search=cfg.blend)
        if not cfg.blend:
            return {n: float(n == "network") for n in names}, {
                "validation": val_metrics,
                "selected": "network",
                "reason": "blending disabled in the configuration: network alone",
            }
        without = {n: c for n, c in comps.items() if n != "network"}
        if weights.get("network", 0.0) > 0:
            other_metrics, other_weights = selection.choose_blend(without, validation, popularity)
        else:  # the best blend already leaves the network out: the same search would find it again
            other_metrics, other_weights = val_metrics, weights
        val_metrics["blend_without_network"] = other_metrics["blend"]

        def ndcg(name: str) -> float:
            return float(val_metrics[name]["NDCG@10"])

        # the best option with the network (a blend or the network alone) against the best without it
        # (a blend or one source): the network keeps a weight only for a strict gain on validation
        with_net = (
            "blend" if weights.get("network", 0.0) > 0 and ndcg("blend") > ndcg("network") else "network"
        )
        single = max((n for n in names if n != "network"), key=ndcg, default=None)
        without_net = "blend_without_network"
        if single is not None and ndcg(single) >= ndcg(without_net):
            without_net = single
        if single is not None and ndcg(with_net) <= ndcg(without_net):
            selected = "blend" if without_net == "blend_without_network" else without_net
            weights = (
                {n: float(other_weights.get(n, 0.0)) for n in names}
                if selected == "blend"
                else {n: float(n == selected) for n in names}
            )
            val_metrics["blend"] = val_metrics[without_net]
        else:
            selected = with_net
            if selected == "network":
                weights = {n: float(n == "network") for n in names}
        reason = (
            f"highest validation NDCG@10: {selected} {ndcg(selected)}"
            f" (network alone {ndcg('network')}; best without the network: {without_net} {ndcg(without_net)})"
        )
        return weights, {"validation": val_metrics, "selected": selected, "reason": reason}

    def _choose_repeats(
        self, seqs: Sequences, cands: dict, network: BehaviorNetwork, names: list[str]
    ) -> tuple[dict[str, float], dict]:
        """The blend for lists that may show what the shopper has seen, on each shopper's last step.

        The same search as the novel blend (network kept only for a gain), on targets where repeats
        count and nothing is masked, with the shopper's own recent items as one more source. Lists
        that exclude the shopper's history use the novel blend instead (``novel_weights_``), so a
        shop that hides seen items and a shop whose shoppers come back to items both get the blend
        chosen for them.
        """
        cfg = self._cfg()
        _, inputs, targets, _ = selection.holdout(seqs, "any")
        pick = selection.sample_rows(len(targets), cfg.max_validation_users, cfg.random_seed)
        inputs, targets = inputs.take(pick), targets[pick]
        if not len(targets):
            return {}, {"value": {}, "searched": False, "reason": "no shopper has a last step to learn from"}
        repeat_share = float(
            np.mean([t in set(s.tolist()) for s, t in zip(inputs.items, targets, strict=True)])
        )
        all_names = [*names, "recent"] if "recent" not in names else list(names)
        logits, _ = score_sequences(network.cpu(), inputs, torch.device("cpu"))
        comps = self._components(inputs, logits, cands, all_names)
        validation = Validation(inputs, targets, mask_history=False)
        weights, report = self._choose_weights(comps, validation, cands["popularity"])
        return weights, {
            "value": {
                "recent_weight": round(weights.get("recent", 0.0), 4),
                "repeat_share": round(repeat_share, 4),
            },
            "searched": True,
            "validation": {k: v["NDCG@10"] for k, v in report["validation"].items()},
            "reason": f"{repeat_share:.0%} of the shoppers' last steps return to an item of their history; "
            + report["reason"],
        }

    def _continue_training(
        self, network: BehaviorNetwork, seqs: Sequences, cfg: NetworkConfig, progress: Progress
    ) -> TrainResult:
        """``refit_epochs`` more passes over ``seqs`` from the current weights (one pass at least)."""
        return Trainer(cfg, progress, "refit").fit(network, seqs, None, epochs=max(int(cfg.refit_epochs), 1))

    def _finalize(
        self,
        log: EventLog,
        clean: EventLog,
        index: ItemIndex,
        seqs: Sequences,
        network: BehaviorNetwork,
        report: dict,
        progress: Progress,
        *,
        propensity: bool,
    ) -> None:
        """Candidate tables, bought-together, trending and (optionally) the propensity head on ``seqs``."""
        cfg = self._cfg()
        n_items = len(index)
        self.network_ = network.cpu().eval()
        cands = self._fit_sources(seqs, n_items)
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
        if propensity:
            progress("propensity", 0.0)
            report["propensity"] = self._fit_propensity(log, progress)
            if "choice" in report["propensity"]:  # the admin lists it with the other choices
                report.setdefault("choices", {})["propensity"] = report["propensity"].pop("choice")
            progress("propensity", 1.0)
            progress("done", 1.0)
        else:  # a refit follows and finishes the model
            self._no_propensity()

    def refit(self, log: EventLog, *, progress: Progress | None = None) -> BehaviorRecommender:
        """Continue training on ``log`` (the fitted events and newer ones) with every choice kept.

        Items new in ``log`` get fresh embeddings; the others keep theirs. The candidate tables, trending
        and the propensity head are rebuilt on ``log``. Used after an evaluation on held-out events, so
        the served model also learns from the newest step of every shopper.
        """
        self._check_fitted()
        cfg = self._cfg()
        t_start = time.perf_counter()
        stage_seconds: dict[str, float] = {}
        report_progress = self._stage_clock(stage_seconds, progress, t_start)
        report_progress("refit", 0.0)
        clean = rare_item_filter(clean_log(log, cfg.event_weights), int(cfg.min_item_users or 1))
        index = ItemIndex(sorted(set(clean.items) | set(self.item_ids_)))
        seqs = build_sequences(clean, index, cfg.event_weights, min_events=int(cfg.min_user_events or 1))
        if not len(seqs):
            raise ValueError("not enough data: no shopper has a usable event after cleaning")
        network = self._new_network(len(index))
        old = self.network_.state_dict()
        state = {k: v for k, v in old.items() if k != "item_emb.weight"}
        weight = network.item_emb.weight.detach().clone()
        rows = torch.tensor([index.index[i] for i in self.item_ids_], dtype=torch.long)
        weight[rows] = old["item_emb.weight"][1:]
        state["item_emb.weight"] = weight
        network.load_state_dict(state)
        result = self._continue_training(network, seqs, cfg, report_progress)
        report = dict(self.report_)
        report.update(
            refit_seconds=round(result.seconds, 2),
            refit_epochs=result.epochs_run,
            n_items=len(index),
            n_events=len(log),
            n_clean_events=len(clean),
            n_users=len(seqs),
            n_steps=seqs.n_events,
        )
        self._finalize(log, clean, index, seqs, network, report, report_progress, propensity=True)
        report["stage_seconds"] = {
            **report.get("stage_seconds", {}),
            **{f"final_{k}": v for k, v in stage_seconds.items()},
        }
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
    def _encode_for_propensity(self, hist: list) -> np.ndarray:
        """The network's last hidden state of each (already cut) history, for the propensity head."""
        seqs = histories_to_sequences(hist, self.index_, self._cfg().event_weights, self._max_length())
        _, hidden = score_sequences(self.network_, seqs, torch.device("cpu"), with_logits=False)
        return hidden

    @property
    def has_propensity_(self) -> bool:
        """Whether a propensity head was trained (else every shopper gets the base rate)."""
        head = getattr(self, "propensity_head_", None)
        return bool(head is not None and head.trained_)

    def _no_propensity(self) -> None:
        """No head: every shopper gets the base rate (0 until a head is trained)."""
        self.propensity_head_ = PropensityHead()

    def _fit_propensity(self, log: EventLog, progress: Progress) -> dict:
        """Train the propensity head on time cuts of ``log`` (see :class:`PropensityHead`)."""
        self.propensity_head_ = PropensityHead()
        encode = self._encode_for_propensity
        return self.propensity_head_.fit(log, self.network_, encode, self._cfg(), progress)

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
        return self.propensity_head_.predict(histories, now, self.network_, self._encode_for_propensity)

    # ------------------------------------------------------------------ scoring
    def _score(self, seqs: Sequences, now: float | None) -> np.ndarray:
        return self._score_tensor(seqs, now).numpy().copy()

    def weights_for(self, seen_excluded: bool) -> dict[str, float]:
        """The blend for lists that exclude the shopper's whole history, or for lists that may not."""
        return self.novel_weights_ if seen_excluded else self.blend_weights_

    def _blend_arguments(
        self, now: float | None, weights: dict[str, float] | None = None
    ) -> tuple[list[str], dict]:
        """Component names with a positive weight and the keyword arguments of the scoring kernels."""
        w = self.blend_weights_ if weights is None else weights
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
        seen_excluded: bool = False,
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
        seen_excluded : bool
            ``exclude`` holds each shopper's whole history: rank with the blend chosen for items new
            to the shopper (the default blend may also rank seen items, which are then excluded).

        Returns
        -------
        idx : ndarray of shape (len(seqs), min(n, n_items)), int64
        vals : ndarray of the same shape, float64; ``-inf`` marks padding past the finite scores
        """
        self._check_fitted()
        weights = self.weights_for(seen_excluded)
        names, arguments = self._blend_arguments(now, weights)
        return scoring.blend_top_k(seqs, weights, names, n, exclude=exclude, **arguments)

    def _rank(
        self,
        seqs: Sequences,
        n: int,
        exclude: tuple[np.ndarray, np.ndarray],
        now: float | None,
        seen_excluded: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.rank_sequences(seqs, n, exclude=exclude, now=now, seen_excluded=seen_excluded)

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
        tensors.update(self.propensity_head_.tensors())
        meta = {
            "class": type(self).__name__,
            "config": self._cfg().to_dict(),
            "item_ids": self.item_ids_,
            "blend_weights": self.blend_weights_,
            "novel_weights": self.novel_weights_,
            "report": self.report_,
            **self.propensity_head_.meta(),
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
            self.propensity_head_ = PropensityHead.from_saved(tensors, meta)
            self.blend_weights_ = {k: float(v) for k, v in meta["blend_weights"].items()}
            # artefacts of earlier releases have one blend for every list
            novel = meta.get("novel_weights") or meta["blend_weights"]
            self.novel_weights_ = {k: float(v) for k, v in novel.items()}
            self.report_ = meta["report"]
            self.item_ids_ = item_ids
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise artifacts.ArtifactError(f"artefact in {directory} is inconsistent: {exc}") from exc
        return self


__all__ = ["BehaviorRecommender", "NotFittedError"]
