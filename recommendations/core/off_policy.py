"""Off-policy evaluation of ranked lists: exploration with logged propensities, and replay.

Serving may explore a little: with probability ``share`` a list's first ``slots`` positions are
shuffled uniformly at random, otherwise the list is shown in its deterministic order. The item
shown at position ``k`` (0-based) whose deterministic position was ``d`` was put there with the
probability::

    p(k) = (1 - share) * [d == k] + share / slots      for k < slots
    p(k) = 1                                           for k >= slots (never moved)

Replay estimates what a candidate ranking policy would get from the logged lists with the
item-position model's inverse propensity scoring (Li, Kiseleva, de Rijke, Chen & Zhang,
"Offline Evaluation of Ranking Policies with Click Models", KDD 2018): under a position-based
click model (a click on item ``i`` at position ``k`` has probability ``theta_k * a_i``), the
candidate's expected clicks per list are estimated by::

    IPS   = 1/n sum_t sum_k  w_tk c_tk,        w_tk = [candidate_tk == logged_tk] / p_tk
    SNIPS = sum_k ( sum_t w_tk c_tk / sum_t w_tk )       (self-normalised per position)

IPS is unbiased wherever every (item, position) the candidate uses had a positive logging
probability; SNIPS trades a small bias for a much smaller variance (each position's weights
are normalised to average one, as they do in expectation). Intervals: normal (IPS: the per-list
values' standard error; SNIPS: the delta method on its ratio) or a seeded bootstrap over lists.

NumPy only: no Django (the service reads impressions and clicks into arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Estimate", "ReplayEstimate", "explore_positions", "position_propensities", "replay_estimate"]

IntervalKind = Literal["normal", "bootstrap"]


def position_propensities(origins: npt.ArrayLike, *, share: float, slots: int) -> npt.NDArray[np.float64]:
    """The probability with which each shown item was put at its position.

    Parameters
    ----------
    origins : array of int, shape (n_positions,)
        ``origins[k]`` is the deterministic (0-based) position of the item shown at ``k``.
    share : float in [0, 1]
        The share of lists that are explored.
    slots : int
        How many leading positions an explored list shuffles (clipped to the list's length).

    Returns
    -------
    array of float64, shape (n_positions,)
    """
    origins = np.asarray(origins, dtype=np.int64)
    n = len(origins)
    m = max(0, min(int(slots), n))
    probabilities = np.ones(n, dtype=np.float64)
    if m > 1 and share > 0:
        positions = np.arange(m)
        probabilities[:m] = (1.0 - share) * (origins[:m] == positions) + share / m
    return probabilities


def explore_positions(
    n: int, *, share: float, slots: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Draw the order in which a list of ``n`` items is shown, and the logged propensities.

    Returns
    -------
    order : array of int64, shape (n,)
        ``order[k]`` is the deterministic position of the item to show at ``k``.
    propensities : array of float64, shape (n,)
        See :func:`position_propensities`.
    """
    order = np.arange(n, dtype=np.int64)
    m = max(0, min(int(slots), n))
    if m > 1 and share > 0 and rng.random() < share:
        order[:m] = rng.permutation(m)
    return order, position_propensities(order, share=share, slots=slots)


@dataclass(frozen=True)
class Estimate:
    """A point estimate of the candidate's clicks per list and its ``1 - alpha`` interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ReplayEstimate:
    """IPS and SNIPS estimates of a candidate's clicks per list over ``lists`` logged lists.

    ``matched``: logged (list, position) pairs where the candidate shows the logged item;
    ``effective_lists``: Kish's effective sample size of the matched weights (small: trust less).
    """

    ips: Estimate
    snips: Estimate
    lists: int
    matched: int
    effective_lists: float


def _weights(
    logged: npt.NDArray[np.int64], candidate: npt.NDArray[np.int64], propensities: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    shown = logged >= 0
    same = shown & (candidate == logged) & (propensities > 0)
    safe = np.where(same, propensities, 1.0)
    return np.where(same, 1.0 / safe, 0.0)


def _snips(weights: npt.NDArray[np.float64], clicks: npt.NDArray[np.float64]) -> float:
    total = weights.sum(axis=0)
    rewarded = (weights * clicks).sum(axis=0)
    per_position = np.divide(rewarded, total, out=np.zeros_like(rewarded), where=total > 0)
    return float(per_position.sum())


def _snips_influence(
    weights: npt.NDArray[np.float64], clicks: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Per-list influence values of SNIPS (the delta method on each position's ratio)."""
    n = weights.shape[0]
    mean_w = weights.sum(axis=0) / n
    ratio = np.divide(
        (weights * clicks).sum(axis=0),
        weights.sum(axis=0),
        out=np.zeros(weights.shape[1]),
        where=weights.sum(axis=0) > 0,
    )
    scale = np.divide(1.0, mean_w, out=np.zeros_like(mean_w), where=mean_w > 0)
    influence: npt.NDArray[np.float64] = ((weights * clicks - ratio * weights) * scale).sum(axis=1)
    return influence


def replay_estimate(
    logged: npt.ArrayLike,
    clicks: npt.ArrayLike,
    propensities: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    interval: IntervalKind = "normal",
    resamples: int = 500,
    random_state: int = 0,
) -> ReplayEstimate:
    """The candidate's expected clicks per list, estimated from logged lists (module doc).

    Parameters
    ----------
    logged : array of int, shape (n_lists, n_positions)
        Item indices shown, ``-1`` where a list is shorter.
    clicks : array of {0, 1}, shape (n_lists, n_positions)
        Whether the item shown there was clicked.
    propensities : array of float, shape (n_lists, n_positions)
        Logged probability of each shown item at its position.
    candidate : array of int, shape (n_lists, n_positions)
        The candidate's item at each position of the same requests, ``-1`` for none.
    alpha : float
        One minus the intervals' confidence level.
    interval : {"normal", "bootstrap"}
        Normal-approximation intervals, or percentile intervals from ``resamples`` bootstrap
        resamples of the lists (seeded with ``random_state``).
    """
    logged_a = np.atleast_2d(np.asarray(logged, dtype=np.int64))
    clicks_a = np.atleast_2d(np.asarray(clicks, dtype=np.float64))
    propensities_a = np.atleast_2d(np.asarray(propensities, dtype=np.float64))
    candidate_a = np.atleast_2d(np.asarray(candidate, dtype=np.int64))
    if not (logged_a.shape == clicks_a.shape == propensities_a.shape == candidate_a.shape):
        raise ValueError("logged, clicks, propensities and candidate must have one shape")
    n = logged_a.shape[0]
    if n == 0:
        nan = Estimate(float("nan"), float("nan"), float("nan"))
        return ReplayEstimate(nan, nan, 0, 0, 0.0)
    weights = _weights(logged_a, candidate_a, propensities_a)
    per_list = (weights * clicks_a).sum(axis=1)
    ips = float(per_list.mean())
    snips = _snips(weights, clicks_a)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    if interval == "bootstrap":
        rng = np.random.default_rng(random_state)
        ips_draws = np.empty(resamples)
        snips_draws = np.empty(resamples)
        for draw in range(resamples):
            rows = rng.integers(0, n, size=n)
            ips_draws[draw] = per_list[rows].mean()
            snips_draws[draw] = _snips(weights[rows], clicks_a[rows])
        quantiles = [alpha / 2, 1 - alpha / 2]
        ips_low, ips_high = np.quantile(ips_draws, quantiles)
        snips_low, snips_high = np.quantile(snips_draws, quantiles)
    else:
        ips_radius = z * float(per_list.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
        influence = _snips_influence(weights, clicks_a)
        snips_radius = z * float(influence.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
        ips_low, ips_high = ips - ips_radius, ips + ips_radius
        snips_low, snips_high = snips - snips_radius, snips + snips_radius
    list_weights = weights.sum(axis=1)
    square = float((list_weights**2).sum())
    effective = float(list_weights.sum() ** 2 / square) if square > 0 else 0.0
    return ReplayEstimate(
        ips=Estimate(ips, float(ips_low), float(ips_high)),
        snips=Estimate(snips, float(snips_low), float(snips_high)),
        lists=n,
        matched=int((weights > 0).sum()),
        effective_lists=effective,
    )
