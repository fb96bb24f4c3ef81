"""Exploration on the serving path: shuffled lists and the probabilities logged with them."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.models import Impression
from recommendations.services.serving import exploration, impressions, recommend_for

pytestmark = pytest.mark.django_db


def test_without_a_share_nothing_moves_and_nothing_is_logged():
    assert exploration.explore(["a", "b", "c"]) == (["a", "b", "c"], None)


def test_a_list_of_one_is_never_explored(settings):
    settings.RECOMMENDER = {**settings.RECOMMENDER, "EXPLORATION_SHARE": 0.5}
    assert exploration.explore(["a"]) == (["a"], None)


def test_every_list_explored_logs_share_over_slots_for_moved_items(settings):
    # given every list explored over its first 3 positions
    settings.RECOMMENDER = {**settings.RECOMMENDER, "EXPLORATION_SHARE": 1.0, "EXPLORATION_SLOTS": 3}
    # when a 4-item list is explored with a seeded generator
    shown, probabilities = exploration.explore(["a", "b", "c", "d"], rng=np.random.default_rng(1))
    # then the tail stays, the first three are a permutation, each with probability 1/3
    assert shown[3] == "d"
    assert sorted(shown[:3]) == ["a", "b", "c"]
    assert probabilities == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0], abs=1e-6)


def test_a_served_list_records_its_propensities_with_its_impression(catalogue, settings):
    # given exploration of a tenth of the lists, over their first 4 positions
    settings.RECOMMENDER = {**settings.RECOMMENDER, "EXPLORATION_SHARE": 0.1, "EXPLORATION_SLOTS": 4}
    # when lists are served and recorded
    results = [recommend_for(visitor_id=f"visitor-{i:04d}", record=True, limit=6) for i in range(20)]
    impressions.flush()
    # then every impression holds one probability per shown item, from the formula's two values
    # at the top (kept: 0.9 + 0.025; moved: 0.025) and 1 in the tail; positions are renumbered
    by_id = {str(row.recommendation_id): row for row in Impression.objects.all()}
    assert len(by_id) == 20
    for result in results:
        row = by_id[result.recommendation_id]
        assert row.item_keys == result.keys
        assert row.propensities == result.propensities
        assert len(row.propensities) == 6
        assert set(row.propensities[:4]) <= {0.925, 0.025}
        assert row.propensities[4:] == [1.0, 1.0]
        assert [entry.position for entry in result.items] == [1, 2, 3, 4, 5, 6]
        tracked = [entry for entry in result.items if entry.tracked_url]
        assert all(f"pos={entry.position}&" in entry.tracked_url for entry in tracked)


def test_lists_are_not_explored_by_default(catalogue):
    recommend_for(visitor_id="visitor-0100", record=True, limit=4)
    impressions.flush()
    assert Impression.objects.get().propensities is None
