"""The mixture SPRT of ``core.sequential`` against hand-computed values, and its level under peeking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendations.core import sequential
from recommendations.core.sequential import Summary


def test_radius_and_p_value_match_the_hand_computed_values():
    # given V = 1e-4, tau2 = 1e-4, alpha = 0.05 and an observed difference of 0.05
    # radius = sqrt(2 V (V + tau2) / tau2 * (ln(1/alpha) + ln((V + tau2) / V) / 2))
    #        = sqrt(0.0004 * (2.995732 + 0.346574)) = sqrt(0.00133692) = 0.0365639
    # ln Lambda = ln(V / (V + tau2)) / 2 + tau2 d^2 / (2 V (V + tau2)) = -0.346574 + 6.25 = 5.903426
    # when
    radius = sequential.confidence_radius(1e-4, 1e-4, 0.05)
    log_ratio = sequential.log_mixture_ratio(0.05, 1e-4, 1e-4)
    # then
    assert radius == pytest.approx(0.0365639, abs=1e-7)
    assert log_ratio == pytest.approx(5.903426, abs=1e-6)
    assert sequential.always_valid_p_value([log_ratio]) == pytest.approx(0.00273007, abs=1e-8)


def test_two_sample_ratio_is_johari_et_al_msprt_for_equal_arms():
    # given n shoppers per arm, a known per-shopper variance sigma2 and a mixing variance tau2
    n, sigma2, tau2, difference = 400, 0.09, 0.0004, 0.03
    # Johari et al.: Lambda = sqrt(2s2 / (2s2 + n t2)) exp(n^2 t2 d^2 / (4 s2 (2s2 + n t2)))
    expected = 0.5 * math.log(2 * sigma2 / (2 * sigma2 + n * tau2)) + n * n * tau2 * difference**2 / (
        4 * sigma2 * (2 * sigma2 + n * tau2)
    )
    # when the general form is given the variance of the difference, 2 sigma2 / n
    log_ratio = sequential.log_mixture_ratio(difference, 2 * sigma2 / n, tau2)
    # then they are the same number
    assert log_ratio == pytest.approx(expected, rel=1e-12)


def test_interval_excludes_zero_exactly_when_the_p_value_is_below_alpha():
    # given two arms of 3,000 shoppers with conversion 10 % and 13 %
    baseline = Summary.of(3000, 300, 300)
    treatment = Summary.of(3000, 390, 390)
    # when compared at alpha 0.05 and at a level too strict for this difference
    loose = sequential.compare(treatment, baseline, alpha=0.05, effect=0.05)
    strict = sequential.compare(treatment, baseline, alpha=0.0001, effect=0.05)
    # then the interval and the p-value agree at both levels
    assert loose.estimate == pytest.approx(0.03)
    assert loose.lower > 0 and loose.significant(0.05)
    assert strict.lower < 0 < strict.upper and not strict.significant(0.0001)
    assert baseline.variance == pytest.approx(0.1 * 0.9 * 3000 / 2999)


def test_running_interval_intersects_looks_and_keeps_the_smallest_p_value():
    # given three looks
    looks = [
        sequential.Interval(0.1, -0.2, 0.4, 0.5),
        sequential.Interval(0.05, -0.1, 0.3, 0.03),
        sequential.Interval(0.02, -0.15, 0.2, 0.2),
    ]
    # when combined
    combined = sequential.running(looks)
    # then the intersection with the newest estimate and the minimum p-value
    assert combined == sequential.Interval(0.02, -0.1, 0.2, 0.03)
    assert sequential.running([]) is None


def test_too_few_shoppers_give_an_unbounded_interval():
    assert (
        sequential.compare(Summary.of(1, 1, 1), Summary.of(50, 5, 5), alpha=0.05, effect=0.05).p_value == 1.0
    )
    assert math.isinf(sequential.mean_interval(Summary.of(0, 0, 0), alpha=0.05, effect=0.05).upper)


def _peeking_runs(rng, *, lift: float, runs: int, looks: int = 20, per_look: int = 150, base: float = 0.1):
    """How many seeded A/B runs the always-valid test and a naive z-test declare significant,
    each looked at ``looks`` times."""
    always_valid = naive = 0
    for _ in range(runs):
        a = rng.random(looks * per_look) < base
        b = rng.random(looks * per_look) < base * (1 + lift)
        intervals, naive_hit = [], False
        for look in range(1, looks + 1):
            n = look * per_look
            sa, sb = Summary.of(n, a[:n].sum(), a[:n].sum()), Summary.of(n, b[:n].sum(), b[:n].sum())
            intervals.append(sequential.compare(sb, sa, alpha=0.05, effect=0.05))
            se = math.sqrt(sa.variance / n + sb.variance / n)
            naive_hit = naive_hit or abs(sb.mean - sa.mean) > 1.96 * se
        combined = sequential.running(intervals)
        always_valid += int(combined is not None and combined.significant(0.05))
        naive += int(naive_hit)
    return always_valid, naive


def test_an_aa_test_read_twenty_times_rarely_declares_a_winner_unlike_a_naive_test():
    # given 100 seeded A/A runs, each read 20 times
    always_valid, naive = _peeking_runs(np.random.default_rng(7), lift=0.0, runs=100)
    # then the always-valid test declares a winner in at most 5 of them, the naive test in more
    assert always_valid <= 5
    assert naive > always_valid


def test_a_large_planted_effect_is_found():
    # given 20 seeded runs where the second arm converts 60 % better (10 % -> 16 %)
    always_valid, _ = _peeking_runs(np.random.default_rng(3), lift=0.6, runs=20)
    # then the always-valid test finds it in most of them
    assert always_valid >= 18
