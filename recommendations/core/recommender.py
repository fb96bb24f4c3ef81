"""``BehaviorRecommender``: the trained bundle of network, co-visitation, item-kNN, transitions, popularity.

``fit`` holds out each shopper's last (novel) step as a time-based validation target, trains the network
with early stopping on it, scores every candidate source on it, picks blend weights there, then refits on
every event. All choices and their validation metrics are recorded in ``report_``.

The steps live in their own modules; this class runs them in order and holds what they fit:
:mod:`~recommendations.core.selection` (filters, holdouts), :mod:`~recommendations.core.network_search`
(the network and its dropout), :mod:`~recommendations.core.sources` (the other candidate sources),
:mod:`~recommendations.core.blend_choice` (the blends), :mod:`~recommendations.core.scoring` (ranking)
and :mod:`~recommendations.core.persistence` (the artefact).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recommendations.core import (
    blend_choice,
    network_search,
    persistence,
    relations,
    scoring,
    selection,
    sources,
)
from recommendations.core.base import BaseRecommender, NotFittedError
from recommendations.core.candidates import CoVisitation, bought_together_matrix
from recommendations.core.components import COMPONENTS, TIE_BREAK
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog, History, ItemIndex, Sequences
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.packed_events import pack_sequences, packed_sequences
from recommendations.core.progress import Progress, stage_clock
from recommendations.core.propensity import N_FEATURES
from recommendations.core.propensity_head import PropensityHead
from recommendations.core.sequences import (
    build_sequences,
    clean_log,
    histories_to_sequences,
    rare_item_filter,
)
from recommendations.core.trainer import Trainer, resolve_device, seed_everything
from recommendations.core.validation import Validation, score_sequences

DAY = 86400.0


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
        resolved: NetworkConfig | None = getattr(self, "config_", None)
        if resolved is not None:
            return resolved
        return self.config if self.config is not None else NetworkConfig()

    def _event_weights(self) -> dict[str, float]:
        return self._cfg().event_weights

    def _max_length(self) -> int | None:
        return self._cfg().max_sequence_length

    def _new_network(
        self, n_items: int, dropout: float | None = None, *, repeat: bool | None = None
    ) -> BehaviorNetwork:
        """A freshly seeded network; dropout ``dropout``, else the configured (or first searched) one.

        ``repeat`` overrides ``repeat_head`` of the configuration (a saved network without the head).
        """
        cfg = self._cfg()
        seed_everything(cfg.random_seed)
        if dropout is None:
            dropout = cfg.dropout if cfg.dropout is not None else cfg.dropout_grid[0]
        return BehaviorNetwork(
            n_items,
            cfg.embedding_dim,
            cfg.num_layers,
            cfg.num_heads,
            float(dropout),
            cfg.history_limit(),
            n_scalar=N_FEATURES,
            repeat=cfg.repeat_head if repeat is None else repeat,
        )

    def _fit_sources(self, seqs: Sequences, n: int) -> dict[str, Any]:
        """Co-visitation, item-kNN, transitions and popularity fitted on ``seqs`` (``n`` items)."""
        return sources.fit_sources(seqs, n, self._cfg())

    def fit(
        self,
        log: EventLog,
        *,
        progress: Progress | None = None,
        propensity: bool = True,
        workdir: str | Path | None = None,
    ) -> BehaviorRecommender:
        """Clean ``log``, make every open choice on validation, train, and fit the candidate sources.

        Parameters
        ----------
        log : EventLog
        progress : callable (stage: str, fraction: float) -> None, optional
        propensity : bool
            Also train the purchase-propensity head (a caller that calls :meth:`refit` next skips it here).
        workdir : path, optional
            A folder for the shoppers' sequences: they are packed there and the network trains from the
            memory-mapped files (:mod:`~recommendations.core.packed_events`) instead of from lists of
            arrays in memory. The result is the same.

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
        report_progress = stage_clock(stage_seconds, progress, t_start)

        report_progress("prepare", 0.0)
        cleaned = clean_log(log, cfg.event_weights)
        all_index = ItemIndex(sorted(set(cleaned.items)))
        all_seqs = build_sequences(cleaned, all_index, cfg.event_weights, min_events=1)
        filters = selection.choose_filters(all_seqs, len(all_index), cfg, self._fit_sources)
        cfg = replace(cfg, min_item_users=filters.min_item_users, min_user_events=filters.min_user_events)
        self.config_ = cfg
        clean = rare_item_filter(cleaned, filters.min_item_users)
        index = ItemIndex(sorted(set(clean.items)))
        seqs = build_sequences(clean, index, cfg.event_weights, min_events=filters.min_user_events)
        lengths = np.fromiter((len(s) for s in seqs.items), dtype=np.int64, count=len(seqs))
        cfg = self.config_ = replace(cfg, max_sequence_length=cfg.length_for(lengths))
        if not len(seqs) or max(len(s) for s in seqs.items) < 2:
            raise ValueError("not enough data: no shopper has two usable events after cleaning")
        n_items = len(index)
        device = resolve_device(cfg.device)
        target_mode = "any" if cfg.mode == "any" else "novel"
        train_seqs, v_inputs, v_targets, _ = selection.holdout(seqs, target_mode)
        seqs, train_seqs = _spill(seqs, workdir, "all"), _spill(train_seqs, workdir, "train")
        pick = selection.sample_rows(len(v_targets), cfg.max_validation_users, cfg.random_seed)
        v_inputs, v_targets = v_inputs.take(pick), v_targets[pick]
        validation = Validation(v_inputs, v_targets, mask_history=target_mode == "novel")
        choices: dict[str, Any] = {
            "filters": {
                "value": {"min_item_users": cfg.min_item_users, "min_user_events": cfg.min_user_events},
                "searched": filters.searched,
                "validation": filters.validation,
            }
        }
        report: dict[str, Any] = {
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
        network, result, choices["dropout"] = network_search.train_network(
            cfg, train_seqs, validation if has_valid else None, n_items, report_progress, self._new_network
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
            blends = blend_choice.choose_blends(seqs, validation, network, cands, names, cfg)
            report_progress("blend", 1.0)
        else:
            blends = blend_choice.network_only(
                names, "no shopper has enough steps for a validation target; network alone"
            )
        report.update(blends.report)
        choices.update(blends.choices)
        # lists that may show what the shopper has seen (the default) and lists where it is excluded
        self.blend_weights_ = {n: float(blends.seen.get(n, 0.0)) for n in COMPONENTS}
        self.novel_weights_ = {n: float(blends.novel.get(n, 0.0)) for n in COMPONENTS}
        report["blend_weights"] = self.blend_weights_
        report["novel_weights"] = self.novel_weights_

        if cfg.refit_full and has_valid and result.best_epoch > 0:
            # the validation targets are the newest, most useful steps: train on everything too
            report_progress("refit", 0.0)
            if cfg.refit_epochs > 0:
                refit = network_search.continue_training(network, seqs, cfg, report_progress)
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

    def _finalize(
        self,
        log: EventLog,
        clean: EventLog,
        index: ItemIndex,
        seqs: Sequences,
        network: BehaviorNetwork,
        report: dict[str, Any],
        progress: Progress,
        *,
        propensity: bool,
    ) -> None:
        """Candidate tables, bought-together, trending and (optionally) the propensity head on ``seqs``."""
        cfg = self._cfg()
        self.network_ = network.cpu().eval()
        cands = self._fit_sources(seqs, len(index))
        self.index_ = index
        self.item_ids_ = list(index.item_ids)
        self.transitions_ = cands["transitions"]
        self.itemknn_ = cands["itemknn"]
        self.popularity_ = cands["popularity"]
        together = bought_together_matrix(
            clean,
            index,
            window=cfg.covis_window,
            session_gap_hours=cfg.session_gap_hours,
            neighbours=cfg.neighbours,
        )
        self.covisitation_ = CoVisitation(self.item_ids_, cands["covisitation"], together)
        self.trend_cols_, self.trend_days_, self.trend_weights_ = sources.fit_trending(
            clean, index, cfg.event_weights
        )
        if propensity:
            progress("propensity", 0.0)
            report["propensity"] = self._fit_propensity(log, progress)
            if "choice" in report["propensity"]:  # the admin lists it with the other choices
                report.setdefault("choices", {})["propensity"] = report["propensity"].pop("choice")
            progress("propensity", 1.0)
            progress("done", 1.0)
        else:  # a refit follows and finishes the model
            self._no_propensity()

    def refit(
        self, log: EventLog, *, progress: Progress | None = None, workdir: str | Path | None = None
    ) -> BehaviorRecommender:
        """Continue training on ``log`` (the fitted events and newer ones) with every choice kept.

        Items new in ``log`` get fresh embeddings; the others keep theirs. The candidate tables, trending
        and the propensity head are rebuilt on ``log``. Used after an evaluation on held-out events, so
        the served model also learns from the newest step of every shopper. ``workdir``: as in :meth:`fit`.
        """
        self._check_fitted()
        cfg = self._cfg()
        t_start = time.perf_counter()
        stage_seconds: dict[str, float] = {}
        report_progress = stage_clock(stage_seconds, progress, t_start)
        report_progress("refit", 0.0)
        clean = rare_item_filter(clean_log(log, cfg.event_weights), int(cfg.min_item_users or 1))
        index = ItemIndex(sorted(set(clean.items) | set(self.item_ids_)))
        seqs = build_sequences(clean, index, cfg.event_weights, min_events=int(cfg.min_user_events or 1))
        if not len(seqs):
            raise ValueError("not enough data: no shopper has a usable event after cleaning")
        seqs = _spill(seqs, workdir, "refit")
        network = self._new_network(len(index), repeat=self.network_.repeat is not None)
        old = self.network_.state_dict()
        state = {k: v for k, v in old.items() if k != "item_emb.weight"}
        weight = network.item_emb.weight.detach().clone()
        rows = torch.tensor([index.index[i] for i in self.item_ids_], dtype=torch.long)
        weight[rows] = old["item_emb.weight"][1:]
        state["item_emb.weight"] = weight
        network.load_state_dict(state)
        result = network_search.continue_training(network, seqs, cfg, report_progress)
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

    def trending(self, now: float) -> np.ndarray:
        """Trending score of every item at ``now`` (events of later days ignored), shape (n_items,)."""
        self._check_fitted()
        return sources.trending_scores(
            self.trend_cols_,
            self.trend_days_,
            self.trend_weights_,
            now,
            self._cfg().trending_half_life_days,
            len(self.item_ids_),
        )

    # ------------------------------------------------------------------ propensity
    def _encode_for_propensity(self, hist: Sequence[History]) -> np.ndarray:
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

    def _fit_propensity(self, log: EventLog, progress: Progress) -> dict[str, Any]:
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
    ) -> tuple[list[str], dict[str, Any]]:
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
        # the blend for new items was chosen on the catalogue softmax (blend_choice.choose_blends)
        return scoring.blend_top_k(
            seqs, weights, names, n, exclude=exclude, catalogue_only=seen_excluded, **arguments
        )

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
        if str(item) not in self.index_.index or n <= 0:
            return []
        out = self.covisitation_.similar(item, n)
        if len(out) < n:
            relations.fill_from_embeddings(out, self.item_embeddings(), self.index_, item, n)
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
    def save(self, directory: str | Path, *, compress: str = "none") -> dict[str, Any]:
        """Write weights and metadata.json into ``directory`` atomically; returns the metadata.

        ``compress="int8"`` stores the artefact compressed (:mod:`recommendations.core.compression`).
        """
        self._check_fitted()
        return persistence.save(self, directory, compress=compress)

    @classmethod
    def load(cls, directory: str | Path) -> BehaviorRecommender:
        """Load an artefact written by :meth:`save`.

        Raises
        ------
        recommendations.core.artifacts.ArtifactError
            Missing or corrupt files, checksum mismatch, pickled payloads, or inconsistent contents.
        """
        return persistence.load(cls, directory)


def _spill(seqs: Sequences, workdir: str | Path | None, name: str) -> Sequences:
    """``seqs`` packed into ``workdir/name`` and mapped back (``seqs`` itself without a workdir)."""
    if workdir is None:
        return seqs
    return packed_sequences(pack_sequences(seqs, Path(workdir) / name))


__all__ = ["BehaviorRecommender", "NotFittedError"]
