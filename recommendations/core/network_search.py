"""Training the behaviour network with the dropout chosen on validation.

Dropout is the one network hyperparameter whose best value differs between shops (sparse logs
over-fit without it, long histories under-fit with too much). The candidates of
``NetworkConfig.dropout_grid`` train on a fixed sample of shoppers; the winner then trains on
everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from recommendations.core import selection
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.progress import Progress
from recommendations.core.trainer import Trainer, TrainResult
from recommendations.core.validation import Validation

#: ``new_network(n_items, dropout)``: a freshly seeded network
NetworkFactory = Callable[[int, float], BehaviorNetwork]


def train_network(
    cfg: NetworkConfig,
    train: Sequences,
    validation: Validation | None,
    n_items: int,
    progress: Progress,
    new_network: NetworkFactory,
) -> tuple[BehaviorNetwork, TrainResult, dict[str, Any]]:
    """Train the network; with several dropout candidates, the one best on validation.

    The candidates train on at most ``search_users`` shoppers (a fixed sample); the winner is then
    trained on everyone unless the sample already was everyone.

    Returns
    -------
    (network, result, choice) : the trained network, its training result and the report's
        ``choices["dropout"]`` entry.
    """
    grid = cfg.dropout_grid if cfg.dropout is None else (float(cfg.dropout),)
    if len(grid) == 1 or validation is None or not len(validation.targets):
        p = grid[0] if cfg.dropout is None else float(cfg.dropout)
        network = new_network(n_items, p)
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
    tried: dict[str, dict[str, float]] = {}
    best: tuple[float, float, BehaviorNetwork, TrainResult] | None = None
    for k, p in enumerate(grid):
        network = new_network(n_items, p)

        def step(stage: str, fraction: float, k: int = k) -> None:
            progress("search", (k + fraction) / len(grid))

        result = Trainer(replace(cfg, dropout=p), step, "search").fit(network, part, part_valid)
        tried[f"{p:g}"] = {"NDCG@10": round(result.best_ndcg, 5), "epochs": result.best_epoch}
        if best is None or result.best_ndcg > best[0] + 1e-12:
            best = (result.best_ndcg, p, network, result)
    assert best is not None
    _, p, network, result = best
    if part is not train:
        network = new_network(n_items, p)
        result = Trainer(replace(cfg, dropout=p), progress, "train").fit(network, train, validation)
    return (
        network,
        result,
        {"value": p, "searched": True, "validation": tried, "sample_users": len(sample)},
    )


def continue_training(
    network: BehaviorNetwork, seqs: Sequences, cfg: NetworkConfig, progress: Progress
) -> TrainResult:
    """``refit_epochs`` more passes over ``seqs`` from the current weights (one pass at least)."""
    return Trainer(cfg, progress, "refit").fit(network, seqs, None, epochs=max(int(cfg.refit_epochs), 1))
