"""Which blend of the candidate sources to serve, chosen on the validation split.

Two blends are chosen: one for lists that exclude what the shopper has seen (targets are each
shopper's last *novel* step, history masked) and, in ``mode="auto"``, one for lists that may
show it again (targets are the last step, repeats count, the shopper's own recent items are one
more source). The network keeps a weight only where it strictly helps on validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recommendations.core import selection
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.trainer import torch_threads
from recommendations.core.validation import Validation, score_sequences


@dataclass
class BlendChoice:
    """The two blends and what the report and the choices record of them.

    ``novel`` ranks lists that exclude the shopper's history; ``seen`` the lists that may not
    (the same as ``novel`` unless ``mode="auto"`` chose another on repeat-friendly targets).
    """

    novel: dict[str, float]
    seen: dict[str, float]
    report: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)


def choose_blends(
    seqs: Sequences,
    validation: Validation,
    network: BehaviorNetwork,
    cands: dict[str, Any],
    names: list[str],
    cfg: NetworkConfig,
) -> BlendChoice:
    """The blend for novel items on ``validation`` and, in ``mode="auto"``, the one for repeats.

    Parameters
    ----------
    seqs : Sequences
        Every shopper's steps (the repeats blend holds out each one's last step itself).
    validation : Validation
        The novel-step validation split the network was early-stopped on.
    cands : dict
        The candidate sources fitted on the training part (:func:`sources.fit_sources`).
    names : list of str
        The components to weigh, in :data:`~recommendations.core.components.COMPONENTS` order.
    """
    with torch_threads(cfg.threads):
        # new items only: the network's catalogue softmax, as lists that hide the history score it
        logits, _ = score_sequences(
            network.cpu(), validation.inputs, torch.device("cpu"), catalogue_only=True
        )
        comps = selection.components(validation.inputs, logits, cands, names, cfg.history_limit())
        weights, report = choose_weights(comps, validation, cands["popularity"], search=cfg.blend)
        choices: dict[str, Any] = {
            "blend": {"value": weights, "searched": cfg.blend, "reason": report["reason"]}
        }
        seen_weights = weights
        if cfg.mode == "auto":
            seen_weights, choices["mode"] = choose_repeats(seqs, cands, network, names, cfg)
    return BlendChoice(weights, seen_weights, report, choices)


def network_only(names: Sequence[str], reason: str) -> BlendChoice:
    """The network alone for every list (no shopper has a validation target to choose on)."""
    weights = {n: float(n == "network") for n in names}
    return BlendChoice(weights, weights, {"selected": "network", "reason": reason})


def choose_weights(
    comps: dict[str, np.ndarray], validation: Validation, popularity: np.ndarray, *, search: bool
) -> tuple[dict[str, float], dict[str, Any]]:
    """Blend weights chosen on validation; the network keeps a weight only where it helps.

    Returns the weights and the report entries (``validation``, ``selected``, ``reason``).
    """
    names = list(comps)
    val_metrics, weights = selection.choose_blend(comps, validation, popularity, search=search)
    if not search:
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
    with_net = "blend" if weights.get("network", 0.0) > 0 and ndcg("blend") > ndcg("network") else "network"
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


def choose_repeats(
    seqs: Sequences, cands: dict[str, Any], network: BehaviorNetwork, names: list[str], cfg: NetworkConfig
) -> tuple[dict[str, float], dict[str, Any]]:
    """The blend for lists that may show what the shopper has seen, on each shopper's last step.

    The same search as the novel blend (network kept only for a gain), on targets where repeats
    count and nothing is masked, with the shopper's own recent items as one more source. Lists
    that exclude the shopper's history use the novel blend instead (``novel_weights_``), so a
    shop that hides seen items and a shop whose shoppers come back to items both get the blend
    chosen for them.
    """
    _, inputs, targets, _ = selection.holdout(seqs, "any")
    pick = selection.sample_rows(len(targets), cfg.max_validation_users, cfg.random_seed)
    inputs, targets = inputs.take(pick), targets[pick]
    if not len(targets):
        return {}, {"value": {}, "searched": False, "reason": "no shopper has a last step to learn from"}
    repeat_share = float(np.mean([t in set(s.tolist()) for s, t in zip(inputs.items, targets, strict=True)]))
    all_names = [*names, "recent"] if "recent" not in names else list(names)
    logits, _ = score_sequences(network.cpu(), inputs, torch.device("cpu"))
    comps = selection.components(inputs, logits, cands, all_names, cfg.history_limit())
    validation = Validation(inputs, targets, mask_history=False)
    weights, report = choose_weights(comps, validation, cands["popularity"], search=cfg.blend)
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
