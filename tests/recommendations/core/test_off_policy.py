"""Exploration propensities and the item-position IPS / SNIPS replay of ``core.off_policy``."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from recommendations.core.off_policy import explore_positions, position_propensities, replay_estimate

THETA = np.array([1.0, 0.6, 0.4])  # position bias
ATTRACTION = np.array([0.5, 0.3, 0.2])  # items 0, 1, 2


def test_propensities_of_an_explored_list_match_the_formula():
    # given the items shown at positions 0..3 came from deterministic positions 1, 0, 2, 3
    # when 20 % of lists shuffle their first 3 positions
    probabilities = position_propensities([1, 0, 2, 3], share=0.2, slots=3)
    # then moved items have share / slots, the one in place 1 - share + share / slots, the tail 1
    assert probabilities == pytest.approx([0.2 / 3, 0.2 / 3, 0.8 + 0.2 / 3, 1.0])


def test_no_exploration_logs_probability_one():
    order, probabilities = explore_positions(5, share=0.0, slots=5, rng=np.random.default_rng(0))
    assert order.tolist() == [0, 1, 2, 3, 4]
    assert probabilities.tolist() == [1.0] * 5


def test_logged_propensities_are_the_frequencies_of_what_is_shown():
    # given many draws of a 3-item list, half of them explored
    rng = np.random.default_rng(3)
    draws = 40_000
    at_zero = np.zeros(3)
    for _ in range(draws):
        order, _probabilities = explore_positions(3, share=0.5, slots=3, rng=rng)
        at_zero[order[0]] += 1
    # then the item of deterministic position d is at position 0 with the logged probability
    expected = position_propensities([0, 1, 2], share=0.5, slots=3)[0], 0.5 / 3, 0.5 / 3
    for seen, probability in zip(at_zero / draws, expected, strict=True):
        standard_error = np.sqrt(probability * (1 - probability) / draws)
        assert abs(seen - probability) <= 4 * standard_error


def test_ips_and_snips_match_hand_computed_values():
    # given three logged lists of two items, the candidate always shows item 0 then item 1
    logged = [[0, 1], [1, 0], [0, 1]]
    clicks = [[1, 0], [0, 1], [0, 1]]
    propensities = [[0.8, 0.8], [0.2, 0.2], [0.8, 0.8]]
    candidate = [[0, 1], [0, 1], [0, 1]]
    # when
    estimate = replay_estimate(logged, clicks, propensities, candidate)
    # then IPS = (1.25 + 0 + 1.25) / 3; SNIPS = 1.25/2.5 + 1.25/2.5 per position
    assert estimate.ips.value == pytest.approx(2.5 / 3)
    assert estimate.snips.value == pytest.approx(1.0)
    assert estimate.matched == 4
    assert estimate.lists == 3


def _simulated_log(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` lists of items [0, 1, 2] explored (share 0.3), clicks from the position-based model."""
    rng = np.random.default_rng(seed)
    shown = np.empty((n, 3), dtype=np.int64)
    propensities = np.empty((n, 3))
    for row in range(n):
        shown[row], propensities[row] = explore_positions(3, share=0.3, slots=3, rng=rng)
    clicks = (rng.random((n, 3)) < ATTRACTION[shown] * THETA).astype(float)
    return shown, clicks, propensities


def test_ips_is_unbiased_within_its_own_interval():
    # given a log of explored lists and a candidate that reverses the order
    shown, clicks, propensities = _simulated_log(20_000, seed=11)
    candidate = np.tile([2, 1, 0], (len(shown), 1))
    truth = float((THETA * ATTRACTION[[2, 1, 0]]).sum())
    # when
    estimate = replay_estimate(shown, clicks, propensities, candidate, alpha=0.01)
    # then the true clicks per list lie inside the estimate's own 99 % intervals
    assert estimate.ips.low <= truth <= estimate.ips.high
    assert estimate.snips.low <= truth <= estimate.snips.high


def test_mean_of_ips_over_seeds_is_the_truth_within_its_standard_error():
    # given 60 independent logs (their estimates' spread gives the tolerance)
    candidate_order = [1, 2, 0]
    truth = float((THETA * ATTRACTION[candidate_order]).sum())
    values = []
    for seed in range(60):
        shown, clicks, propensities = _simulated_log(1_000, seed=100 + seed)
        candidate = np.tile(candidate_order, (len(shown), 1))
        values.append(replay_estimate(shown, clicks, propensities, candidate).ips.value)
    # then the mean of the estimates is within its 99.9 % interval of the truth
    standard_error = np.std(values, ddof=1) / np.sqrt(len(values))
    assert abs(np.mean(values) - truth) <= NormalDist().inv_cdf(0.9995) * standard_error


def test_bootstrap_intervals_cover_the_estimates():
    shown, clicks, propensities = _simulated_log(2_000, seed=5)
    candidate = np.tile([0, 1, 2], (len(shown), 1))
    estimate = replay_estimate(shown, clicks, propensities, candidate, interval="bootstrap", resamples=200)
    assert estimate.ips.low < estimate.ips.value < estimate.ips.high
    assert estimate.snips.low < estimate.snips.value < estimate.snips.high


def test_a_candidate_outside_the_logged_lists_gets_no_credit():
    estimate = replay_estimate([[0, 1]], [[1, 1]], [[1.0, 1.0]], [[5, 6]])
    assert estimate.ips.value == 0.0
    assert estimate.matched == 0


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        replay_estimate([[0, 1]], [[1]], [[1.0, 1.0]], [[0, 1]])
