"""Popularity, trending and co-visitation without the network."""

from __future__ import annotations

import pytest

from recommendations.core.candidates import covisitation, popularity_scores, trending_scores
from recommendations.core.dataset import EventLog

DAY = 86400.0


def test_trending_decays_with_half_life_and_ignores_future_events():
    # given: one view now, one purchase a half-life ago, one view in the future
    now = 100 * DAY
    log = EventLog.from_histories(
        {"u1": [("a", "view", now), ("b", "purchase", now - 7 * DAY)], "u2": [("a", "view", now + DAY)]}
    )

    # when
    scores = trending_scores(log, now, half_life_days=7.0)

    # then
    assert scores == {"a": pytest.approx(1.0), "b": pytest.approx(5.0 * 0.5)}
    assert popularity_scores(log) == {"a": 2.0, "b": 5.0}


def test_covisitation_similar_and_bought_together():
    # given: a and b viewed together by two shoppers, c only once with a; x and y bought together
    log = EventLog.from_histories(
        {
            "u1": [
                ("a", "view", 0.0),
                ("b", "view", 10.0),
                ("x", "purchase", 5 * DAY),
                ("y", "purchase", 5 * DAY + 10),
            ],
            "u2": [("a", "view", 0.0), ("b", "view", 10.0)],
            "u3": [("a", "view", 0.0), ("c", "view", 10.0 * DAY)],  # outside the session window
        }
    )

    # when
    cov = covisitation(log, window=2, session_gap_hours=24.0)

    # then
    assert [k for k, _ in cov.similar("a", 5)] == ["b"]
    assert [k for k, _ in cov.bought_together("x", 5)] == ["y"]
    assert cov.similar("unknown") == [] and cov.bought_together("a") == []
