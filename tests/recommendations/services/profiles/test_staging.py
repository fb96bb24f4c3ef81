"""Staged chunk features: read back bit for bit, and put together they are the features of everyone."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.services.profiles import staging
from recommendations.services.profiles.compute import compute
from recommendations.services.profiles.features import profile_users
from tests.recommendations.services.profiles.test_fanout import _shop

NOW = 1_800_000_000.0


def _assert_same(a, b) -> None:
    assert (a.user_pks, a.usernames, a.table.columns) == (b.user_pks, b.usernames, b.table.columns)
    np.testing.assert_array_equal(a.table.values, b.table.values)  # NaN where NaN, every bit else
    np.testing.assert_array_equal(a.table.category_shares, b.table.category_shares)
    np.testing.assert_array_equal(a.has_events, b.has_events)
    assert (a.table.top_categories, a.table.notes) == (b.table.top_categories, b.table.notes)
    assert (a.notes, a.propensity_source, a.model_version, a.clock) == (
        b.notes,
        b.propensity_source,
        b.model_version,
        b.clock,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("model", [False, True], ids=["heuristic", "network"])
def test_staged_features_read_back_unchanged(user_factory, event_factory, catalogue, request, model):
    # given the features of 6 shoppers and a user without events (NaN where unknown), with the
    # network's embeddings when a model is active
    if model:
        request.getfixturevalue("active_model")
    _shop(user_factory, event_factory, catalogue, users=6)
    pks, names = profile_users()
    computed = compute(pks, names, now=NOW, restrict=True, affinity_columns=None, every_affinity=True)
    assert np.isnan(computed.table.values).any() and (computed.embeddings is not None) == model
    # when they are staged and read back
    back = staging.unpack(staging.pack(computed))
    # then every number and note is the same
    _assert_same(back, computed)
    np.testing.assert_array_equal(back.table.category_activity, computed.table.category_activity)
    if model:
        np.testing.assert_array_equal(back.embeddings, computed.embeddings)


@pytest.mark.django_db
def test_chunks_put_together_are_the_features_of_everyone(user_factory, event_factory, catalogue, settings):
    # given 10 shoppers in two categories, their features computed in one pass over everyone
    settings.RECOMMENDER = {**settings.RECOMMENDER, "PROFILE_AFFINITY_CATEGORIES": 1}
    _shop(user_factory, event_factory, catalogue, users=10)
    pks, names = profile_users()
    everyone = compute(pks, names, now=NOW, restrict=False, affinity_columns=None)
    # when chunks of 4 keep every category, are staged, and put together on the chosen columns
    parts = [
        staging.unpack(
            staging.pack(
                compute(
                    pks[i : i + 4],
                    names[i : i + 4],
                    now=NOW,
                    restrict=True,
                    affinity_columns=None,
                    every_affinity=True,
                )
            )
        )
        for i in range(0, len(pks), 4)
    ]
    assert any(len([c for c in p.table.columns if c.startswith("affinity:")]) == 2 for p in parts)
    chosen = staging.affinity_columns_of(parts, 1)
    together = staging.concatenate(parts, chosen)
    # then they are the features one pass computes, bit for bit
    assert chosen == [everyone.table.columns[18][len("affinity:") :]]
    _assert_same(together, everyone)


@pytest.mark.django_db
def test_chunks_of_different_catalogues_are_refused(
    user_factory, event_factory, catalogue, category_factory, product_factory
):
    # given a chunk computed, then a category with an item added before the next chunk
    _shop(user_factory, event_factory, catalogue, users=4)
    pks, names = profile_users()
    first = compute(pks[:2], names[:2], now=NOW, restrict=True, affinity_columns=None, every_affinity=True)
    product_factory(category=category_factory(name="Gloves", slug="gloves"))
    second = compute(pks[2:], names[2:], now=NOW, restrict=True, affinity_columns=None, every_affinity=True)
    # then they are not put together
    with pytest.raises(ValueError, match="item categories changed"):
        staging.concatenate([first, second], ["Shoes"])
