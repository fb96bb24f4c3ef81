"""One contract every recommender algorithm passes (tiny synthetic data, fixed seeds)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from recommendations.core.base import BaseRecommender, NotFittedError
from recommendations.core.baselines import CoVisitationRecommender, PopularityRecommender
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0, fast_config, planted_log

FACTORIES = {
    "popularity": lambda: PopularityRecommender(half_life_days=7.0),
    "covisitation": lambda: CoVisitationRecommender(),
    "behavior": lambda: BehaviorRecommender(fast_config(epochs=3, refit_full=False)),
}


@pytest.fixture(scope="module")
def log():
    return planted_log(n_users=40, n_items=12, length=6)


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def fitted(request, log):
    model = FACTORIES[request.param]()
    returned = model.fit(log)
    return model, returned


def test_fit_returns_self_and_sets_learned_attributes(fitted):
    # given / when
    model, returned = fitted

    # then
    assert returned is model
    assert isinstance(model, BaseRecommender)
    assert model.item_ids_ == [f"sku-{i:03d}" for i in range(12)]


def test_recommend_shapes_order_and_unknown_items(fitted):
    # given
    model, _ = fitted
    histories = [[("sku-001", "view", T0), ("unknown", "view", T0 + 1)], [], [("sku-005", "purchase", T0)]]

    # when
    recs = model.recommend(histories, n=5, now=T0 + 100)

    # then
    assert [len(r) for r in recs] == [5, 5, 5]
    for r in recs:
        scores = [s for _, s in r]
        assert scores == sorted(scores, reverse=True)
        assert len({k for k, _ in r}) == 5 and all(k in model.item_ids_ for k, _ in r)


def test_recommend_respects_excludes_and_n_larger_than_catalogue(fitted):
    # given
    model, _ = fitted
    excluded = {"sku-000", "sku-001", "sku-002", "never-seen"}

    # when
    recs = model.recommend([[("sku-001", "view", T0)]], n=50, exclude=[excluded])

    # then
    keys = [k for k, _ in recs[0]]
    assert len(keys) == 12 - 3
    assert not excluded & set(keys)


def test_similar_items_unknown_is_empty_and_known_excludes_itself(fitted):
    # given
    model, _ = fitted

    # when
    similar = model.similar_items("sku-003", n=4)

    # then
    assert model.similar_items("nope") == []
    assert 0 < len(similar) <= 4 and "sku-003" not in [k for k, _ in similar]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_unfitted_use_raises(name):
    # given
    model = FACTORIES[name]()

    # when / then
    with pytest.raises(NotFittedError, match="fit"):
        model.recommend([[]], n=3)
    with pytest.raises(NotFittedError):
        model.similar_items("sku-001")


def test_mismatched_exclude_length_is_rejected(fitted):
    # given
    model, _ = fitted

    # when / then
    with pytest.raises(ValueError, match="exclude"):
        model.recommend([[], []], n=3, exclude=[set()])


def test_same_seed_gives_same_scores(log):
    # given
    histories = [[("sku-004", "view", T0), ("sku-005", "view", T0 + 5)]]

    # when
    a = BehaviorRecommender(fast_config(epochs=2, refit_full=False)).fit(log).recommend(histories, n=5)
    b = BehaviorRecommender(fast_config(epochs=2, refit_full=False)).fit(log).recommend(histories, n=5)

    # then
    assert [k for k, _ in a[0]] == [k for k, _ in b[0]]
    np.testing.assert_allclose([s for _, s in a[0]], [s for _, s in b[0]], rtol=1e-5)


@pytest.fixture(scope="module")
def bundle(log):
    return BehaviorRecommender(fast_config(epochs=1, refit_full=False)).fit(log)


@pytest.mark.parametrize(
    "source", ["network", "covisitation", "itemknn", "transitions", "recent", "popularity"]
)
def test_every_blend_source_scores_alone(bundle, source):
    # given: the fitted bundle forced to use one source
    model = copy.copy(bundle)
    model.blend_weights_ = {name: float(name == source) for name in bundle.blend_weights_}

    # when
    recs = model.recommend([[("sku-001", "view", T0), ("sku-002", "view", T0 + 1)]], n=4)

    # then
    assert len(recs[0]) == 4
