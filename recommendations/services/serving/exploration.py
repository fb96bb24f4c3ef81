"""Exploration for off-policy replay: a small share of personal lists shown in a random order.

With ``EXPLORATION_SHARE`` above 0, :func:`explore` shuffles the first ``EXPLORATION_SLOTS``
positions of that share of the lists ``serve_list`` assembles, and returns, for every shown
position, the probability with which its item was put there
(``recommendations.core.off_policy.explore_positions``). The probabilities ride with the list
into its impression (``Impression.propensities``), so ``evaluate --replay`` can estimate another
model's click rate from real traffic. At 0 (the default) lists are never moved and nothing more
is logged.
"""

from __future__ import annotations

import threading
from typing import TypeVar

import numpy as np

from recommendations.conf import recommender_settings
from recommendations.core.off_policy import explore_positions

__all__ = ["explore"]

T = TypeVar("T")

_local = threading.local()


def _generator() -> np.random.Generator:
    """This thread's generator (NumPy's generators are not thread-safe), seeded from the OS."""
    generator = getattr(_local, "generator", None)
    if generator is None:
        generator = _local.generator = np.random.default_rng()
    return generator


def explore(chosen: list[T], *, rng: np.random.Generator | None = None) -> tuple[list[T], list[float] | None]:
    """``chosen`` in the order to show it, and each position's logged probability (None when the
    serving path does not explore: no share, or a list too short to move)."""
    share = float(recommender_settings.EXPLORATION_SHARE or 0.0)
    if share <= 0 or len(chosen) < 2:
        return chosen, None
    order, probabilities = explore_positions(
        len(chosen), share=share, slots=recommender_settings.EXPLORATION_SLOTS, rng=rng or _generator()
    )
    return [chosen[index] for index in order], [round(float(p), 6) for p in probabilities]
