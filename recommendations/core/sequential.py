"""Always-valid inference for online experiments: the mixture sequential probability ratio test.

The results of an A/B test are read every day; a fixed-horizon p-value read repeatedly finds a
"winner" far more often than its level says. These intervals and p-values stay valid at every
look, however often staff look (Johari, Koomen, Pekelis & Walsh, "Always Valid Inference:
Continuous Monitoring of A/B Tests", Operations Research 2022; Howard, Ramdas, McAuliffe &
Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 2021).

For an estimate ``d`` of an effect ``theta`` (a mean, or a difference of two arms' means),
approximately normal with variance ``V`` (``s_a**2 / n_a + s_b**2 / n_b`` for a difference),
and a normal mixing distribution ``N(0, tau2)`` over the effect, the mixture likelihood ratio
of ``H0: theta = theta0`` is::

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * (d - theta0)**2 / (2 * V * (V + tau2)))

It is a martingale under ``H0``, so by Ville's inequality ``P(sup_n Lambda_n >= 1/alpha) <=
alpha``: the always-valid p-value is ``min(1, min_n 1/Lambda_n)`` and the confidence sequence
is ``d +- radius`` with::

    radius = sqrt(2 * V * (V + tau2) / tau2 * (log(1/alpha) + log((V + tau2) / V) / 2))

With ``n`` shoppers per arm and the variances known, this is Johari et al.'s two-sample mSPRT
exactly (``V = 2 s**2 / n``); the variances are estimated from the data (plug-in), which makes
it valid asymptotically (Waudby-Smith et al., "Time-uniform central limit theory and asymptotic
confidence sequences", 2021). ``tau2 = effect**2 * (per-shopper variance)``: the mixture is
tightest near ``n = 8 / effect**2`` shoppers per arm (about 3,200 for ``effect = 0.05``).

Pure NumPy-free Python: no Django, no arrays (the inputs are a handful of sums per arm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Interval",
    "Summary",
    "always_valid_p_value",
    "compare",
    "confidence_radius",
    "log_mixture_ratio",
    "mean_interval",
    "mixture_variance",
    "running",
]


@dataclass(frozen=True)
class Summary:
    """One arm's metric over its shoppers: count, mean and (unbiased) variance per shopper."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, n: int, total: float, total_of_squares: float) -> Summary:
        """From the count, the sum and the sum of squares of the per-shopper values."""
        if n <= 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        variance = max(total_of_squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)


@dataclass(frozen=True)
class Interval:
    """An always-valid estimate: ``estimate`` within ``[lower, upper]`` and its p-value against 0."""

    estimate: float
    lower: float
    upper: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        """True when the p-value is at most ``alpha`` (the interval then excludes 0)."""
        return self.p_value <= alpha


def mixture_variance(per_shopper_variance: float, effect: float) -> float:
    """``tau2``: the mixing variance for an effect of ``effect`` per-shopper standard deviations."""
    return effect * effect * per_shopper_variance


def log_mixture_ratio(estimate: float, variance: float, tau2: float, null: float = 0.0) -> float:
    """``log Lambda`` of the module's docstring (0 when the variance or ``tau2`` is not positive)."""
    if variance <= 0 or tau2 <= 0:
        return 0.0
    total = variance + tau2
    return 0.5 * math.log(variance / total) + tau2 * (estimate - null) ** 2 / (2 * variance * total)


def confidence_radius(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the ``1 - alpha`` confidence sequence (infinite without a variance)."""
    if variance <= 0 or tau2 <= 0:
        return math.inf
    total = variance + tau2
    return math.sqrt(2 * variance * total / tau2 * (math.log(1 / alpha) + 0.5 * math.log(total / variance)))


def always_valid_p_value(log_ratios: Iterable[float]) -> float:
    """``min(1, min_n 1/Lambda_n)`` over the looks so far (the running minimum is what stays valid)."""
    best = max(log_ratios, default=0.0)
    return min(1.0, math.exp(-best)) if best > 0 else 1.0


def _interval(estimate: float, variance: float, tau2: float, alpha: float) -> Interval:
    radius = confidence_radius(variance, tau2, alpha)
    p_value = always_valid_p_value([log_mixture_ratio(estimate, variance, tau2)])
    return Interval(estimate, estimate - radius, estimate + radius, p_value)


def mean_interval(arm: Summary, *, alpha: float, effect: float) -> Interval:
    """The confidence sequence of one arm's mean (p-value against a mean of 0)."""
    if arm.n < 2:
        return Interval(arm.mean, -math.inf, math.inf, 1.0)
    return _interval(arm.mean, arm.variance / arm.n, mixture_variance(arm.variance, effect), alpha)


def compare(treatment: Summary, baseline: Summary, *, alpha: float, effect: float) -> Interval:
    """The confidence sequence of ``treatment.mean - baseline.mean`` and its p-value against 0."""
    if treatment.n < 2 or baseline.n < 2:
        return Interval(treatment.mean - baseline.mean, -math.inf, math.inf, 1.0)
    variance = treatment.variance / treatment.n + baseline.variance / baseline.n
    tau2 = mixture_variance(treatment.variance + baseline.variance, effect)
    return _interval(treatment.mean - baseline.mean, variance, tau2, alpha)


def running(intervals: Iterable[Interval]) -> Interval | None:
    """The intersection of the looks so far (any intersection of a confidence sequence is valid)
    with the running minimum p-value; None without a look."""
    result: Interval | None = None
    for interval in intervals:
        if result is None:
            result = interval
            continue
        result = Interval(
            interval.estimate,
            max(result.lower, interval.lower),
            min(result.upper, interval.upper),
            min(result.p_value, interval.p_value),
        )
    return result
