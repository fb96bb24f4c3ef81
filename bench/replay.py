"""Off-policy replay benchmark: does the replay estimate predict a candidate's served click rate?

In process, no database: simulated shoppers with planted click probabilities. Each shopper has
a type; a click on item ``i`` shown at position ``k`` happens with probability
``theta_k * a[type, i]`` (a position-based model: ``theta_k`` the position bias, ``a`` the
planted attraction). One run:

1. the **logging policy** (the model serving today: a noisy view of ``a``) picks each request's
   top ``--limit`` items and serves them through the exploration of
   ``recommendations.core.off_policy.explore_positions`` (``--share`` of the lists shuffled in
   their first ``--slots`` positions), logging each shown item's propensity and the clicks;
2. the **candidate** (another noisy view of ``a``, closer to it) re-ranks each logged list's
   items; IPS and SNIPS (``replay_estimate``) estimate its clicks per list from the log alone;
3. the candidate is then **served** (deterministically, no exploration) to the same simulated
   shoppers (new requests drawn from the same population), and its real click rate is measured.

Prints the estimates with their intervals, the served click rate and the relative errors, for
``--seeds`` seeded runs. The figure: the replay estimate within 10 % (relative) of the served
rate. Usage::

    nice -n 15 .venv/bin/python bench/replay.py [--lists 200000] [--share 0.1] [--slots 10] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recommendations.core.off_policy import ReplayEstimate, explore_positions, replay_estimate


@dataclass(frozen=True)
class Shoppers:
    """The planted click model: attraction per (type, item) and the position bias."""

    attraction: npt.NDArray[np.float64]  # (types, items)
    position_bias: npt.NDArray[np.float64]  # (limit,)

    def draw_types(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        """The types of ``n`` requests' shoppers."""
        return rng.integers(0, self.attraction.shape[0], size=n)

    def click(
        self, types: npt.NDArray[np.int64], shown: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> Any:
        """Clicks (0/1) on the shown lists (rows: requests; columns: positions)."""
        probability = self.attraction[types[:, None], shown] * self.position_bias[None, : shown.shape[1]]
        return (rng.random(shown.shape) < probability).astype(np.float64)


def planted(rng: np.random.Generator, *, types: int, items: int, limit: int) -> Shoppers:
    """A population: each type likes a few items much more than the rest; bias ``1 / (k + 1) ** 0.8``."""
    attraction = 0.4 * rng.beta(0.6, 6.0, size=(types, items))
    bias = 1.0 / np.arange(1, limit + 1, dtype=np.float64) ** 0.8
    return Shoppers(attraction, bias.astype(np.float64))


def ranking(
    scores: npt.NDArray[np.float64], types: npt.NDArray[np.int64], limit: int
) -> npt.NDArray[np.int64]:
    """Each request's top ``limit`` items by its type's scores, best first."""
    rows = scores[types]
    top = np.argpartition(-rows, limit - 1, axis=1)[:, :limit]
    order = np.argsort(-np.take_along_axis(rows, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def rerank(
    scores: npt.NDArray[np.float64], types: npt.NDArray[np.int64], items: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The same items per request, ordered by the candidate's scores."""
    order = np.argsort(-scores[types[:, None], items], axis=1)
    return np.take_along_axis(items, order, axis=1)


def one_run(args: argparse.Namespace, seed: int) -> tuple[ReplayEstimate, float, float]:
    """(replay estimate, served clicks per list, the logging policy's clicks per list)."""
    rng = np.random.default_rng(seed)
    shoppers = planted(rng, types=args.types, items=args.items, limit=args.limit)
    logging_scores = shoppers.attraction + rng.normal(0, 0.05, shoppers.attraction.shape)
    candidate_scores = shoppers.attraction + rng.normal(0, 0.005, shoppers.attraction.shape)
    # 1. log explored lists under the logging policy
    types = shoppers.draw_types(args.lists, rng)
    deterministic = ranking(logging_scores, types, args.limit)
    shown = np.empty_like(deterministic)
    propensities = np.empty(deterministic.shape)
    for row in range(args.lists):
        order, propensities[row] = explore_positions(args.limit, share=args.share, slots=args.slots, rng=rng)
        shown[row] = deterministic[row, order]
    clicks = shoppers.click(types, shown, rng)
    # 2. replay the candidate's re-ranking of each logged list
    candidate = rerank(candidate_scores, types, deterministic)
    estimate = replay_estimate(shown, clicks, propensities, candidate, interval=args.interval)
    # 3. serve the candidate to new requests of the same shoppers
    served_types = shoppers.draw_types(args.lists, rng)
    served = rerank(candidate_scores, served_types, ranking(logging_scores, served_types, args.limit))
    served_rate = float(shoppers.click(served_types, served, rng).sum(axis=1).mean())
    return estimate, served_rate, float(clicks.sum(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=200_000, help="logged lists (and served lists) per run")
    parser.add_argument("--share", type=float, default=0.1, help="exploration share of the logging policy")
    parser.add_argument("--slots", type=int, default=10, help="leading positions an explored list shuffles")
    parser.add_argument("--limit", type=int, default=10, help="list length")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--types", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--interval", choices=["normal", "bootstrap"], default="normal")
    args = parser.parse_args()
    print(
        f"{args.lists} logged lists per run, exploration share {args.share}, {args.slots} slots, "
        f"lists of {args.limit}; clicks per list (95 % intervals)\n"
    )
    columns = ["seed", "logging policy", "IPS", "SNIPS", "served candidate", "IPS error", "SNIPS error"]
    print("| " + " | ".join([*columns, "effective lists"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for seed in range(args.seeds):
        estimate, served, logged = one_run(args, seed)
        ips_error = (estimate.ips.value - served) / served
        snips_error = (estimate.snips.value - served) / served
        worst = max(worst, abs(ips_error), abs(snips_error))
        ips, snips = estimate.ips, estimate.snips
        print(
            f"| {seed} | {logged:.4f} | {ips.value:.4f} [{ips.low:.4f}, {ips.high:.4f}] "
            f"| {snips.value:.4f} [{snips.low:.4f}, {snips.high:.4f}] | {served:.4f} "
            f"| {ips_error:+.1%} | {snips_error:+.1%} | {estimate.effective_lists:,.0f} |"
        )
    print(f"\nlargest relative error over {args.seeds} seeds: {worst:.1%} (goal: within 10 %)")


if __name__ == "__main__":
    main()
