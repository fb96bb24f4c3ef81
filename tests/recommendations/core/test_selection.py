"""Choices made on validation data: filters, batch size, sequence length, the network's weight, repeats."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog, ItemIndex
from recommendations.core.recommender import BehaviorRecommender
from recommendations.core.selection import choose_filters, holdout
from recommendations.core.sequences import build_sequences, clean_log
from recommendations.core.training_batches import batch_size_for
from tests.recommendations.core.conftest import T0, fast_config


def _log(rows: list[tuple[str, str, str, float]]) -> EventLog:
    users, items, types, times = zip(*rows, strict=True)
    return EventLog(
        np.array(users, dtype=object),
        np.array(items, dtype=object),
        np.array(types, dtype=object),
        np.array(times),
    )


def pairs_log(n_pairs: int = 150, seed: int = 0) -> EventLog:
    """Long-tail pairs: shopper 2k and 2k+1 both view a popular item, then the pair's own rare item.

    Every rare item is seen by exactly two shoppers, so once one of them is held out the other is its
    only trace: a rare-item filter of 2 users makes every held-out rare item unreachable.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_pairs):
        for s in (0, 1):
            user = f"u{2 * p + s}"
            t = T0 + p * 1000 + s * 100
            hub = f"hub-{int(rng.integers(0, 5))}"
            # both walk hub -> warm -> rare; the second then goes on to a last item (its held-out step),
            # so the rare item stays in training through the second shopper alone
            walk = [hub, f"warm-{p % 30}", f"rare-{p}"] + ([f"end-{p % 7}"] if s else [])
            rows += [(user, item, "view", t + 10 * j) for j, item in enumerate(walk)]
    return _log(rows)


def _seqs(log: EventLog, config: NetworkConfig):
    clean = clean_log(log, config.event_weights)
    index = ItemIndex(sorted(set(clean.items)))
    return build_sequences(clean, index, config.event_weights, min_events=1), index


def _fit_sources(seqs, n):
    return BehaviorRecommender(NetworkConfig())._fit_sources(seqs, n)


def test_filter_search_keeps_items_that_one_other_shopper_saw_when_shoppers_go_on_to_them():
    # given: the held-out step of every shopper is a rare item one other shopper viewed
    config = NetworkConfig()
    seqs, index = _seqs(pairs_log(), config)

    # when
    choice = choose_filters(seqs, len(index), config, _fit_sources)

    # then: no rare-item filter (one of 2 users makes every rare target a miss); the history filters
    # tie (every shopper has 3 steps or more) and the stronger one is kept
    assert choice.searched
    assert (choice.min_item_users, choice.min_user_events) == (1, 2)
    assert choice.validation["1,1"] == choice.validation["1,2"] > 0.2
    assert choice.validation["2,1"] == choice.validation["3,1"] == 0.0


def test_a_filter_set_in_the_configuration_is_not_searched():
    config = NetworkConfig(min_item_users=2, min_user_events=2)
    seqs, index = _seqs(pairs_log(), config)

    choice = choose_filters(seqs, len(index), config, _fit_sources)

    assert (choice.min_item_users, choice.min_user_events, choice.searched) == (2, 2, False)
    assert choice.validation == {}


def test_only_the_open_half_of_the_filter_is_searched():
    config = NetworkConfig(min_user_events=1)
    seqs, index = _seqs(pairs_log(), config)

    choice = choose_filters(seqs, len(index), config, _fit_sources)

    assert set(choice.validation) == {"1,1", "2,1", "3,1"}


@pytest.mark.parametrize(
    ("windows", "fixed", "expected"),
    [(758, None, 16), (5_000, None, 100), (100_000, None, 128), (758, 64, 64)],
)
def test_batch_size_gives_small_logs_enough_steps_per_epoch(windows, fixed, expected):
    assert batch_size_for(NetworkConfig(batch_size=fixed), windows) == expected


def test_sequence_length_follows_the_history_lengths_within_its_range():
    config = NetworkConfig()
    assert config.length_for(np.array([3] * 90 + [400] * 10)) == 50
    assert config.length_for(np.array([120] * 95 + [400] * 5)) == 120
    assert config.length_for(np.array([900] * 100)) == 200
    assert NetworkConfig(max_sequence_length=30).length_for(np.array([900] * 100)) == 30


def test_lists_that_may_show_seen_items_get_the_blend_chosen_where_repeats_count(planted):
    # given shoppers who go back to an item of their own history, one of their own choosing,
    # at their last step (no other source predicts which)
    rng = np.random.default_rng(1)
    rows = []
    for u in range(60):
        walk = [f"sku-{(u + k) % 20:03d}" for k in range(6)]
        walk[1] = walk[int(rng.integers(0, 5))]
        rows += [(f"u{u}", item, "view", T0 + u * 1000 + 10 * k) for k, item in enumerate([*walk, walk[1]])]
    rec = BehaviorRecommender(fast_config(epochs=4)).fit(_log(rows), propensity=False)

    # then: the default blend ranks the shopper's own recent items, the novel one never needs to
    mode = rec.report_["choices"]["mode"]
    assert mode["value"]["repeat_share"] == 1.0
    assert rec.blend_weights_["recent"] > 0.0
    assert rec.novel_weights_["recent"] == 0.0
    assert rec.weights_for(seen_excluded=True) == rec.novel_weights_
    assert rec.weights_for(seen_excluded=False) == rec.blend_weights_
    # and a list that may show seen items puts the item the shopper returns to in its top 3
    history = [("sku-005", "view", T0), ("sku-006", "view", T0 + 10), ("sku-007", "view", T0 + 20)]
    top = [k for k, _ in rec.recommend([history], 3)[0]]
    assert "sku-006" in top


def test_holdout_takes_the_last_novel_step_or_the_last_step():
    seqs = build_sequences(
        _log(
            [
                ("u", "a", "view", T0),
                ("u", "b", "view", T0 + 1),
                ("u", "c", "view", T0 + 2),
                ("u", "a", "view", T0 + 3),
            ]
        ),
        ItemIndex(["a", "b", "c"]),
        {"view": 1.0},
    )
    _, novel_in, novel_t, _ = holdout(seqs, "novel")
    _, any_in, any_t, _ = holdout(seqs, "any")
    assert novel_t.tolist() == [3] and novel_in.items[0].tolist() == [1, 2]
    assert any_t.tolist() == [1] and any_in.items[0].tolist() == [1, 2, 3]


def test_fit_records_every_choice_and_gives_the_network_weight_only_when_it_helps(planted):
    # given: the default search (filters, dropout, batch size, length, repeats) on a small log
    rec = BehaviorRecommender(
        fast_config(
            min_item_users=None,
            dropout=None,
            dropout_grid=(0.1, 0.3),
            batch_size=None,
            max_sequence_length=None,
            epochs=8,
        )
    ).fit(planted)

    # then: each open choice is recorded with its figures, and the resolved values are the model's
    choices = rec.report_["choices"]
    assert set(choices) >= {"filters", "dropout", "batch_size", "max_sequence_length", "blend", "mode"}
    assert set(choices["dropout"]["validation"]) == {"0.1", "0.3"}
    assert rec.config_.dropout in (0.1, 0.3)
    assert rec.config_.min_item_users == choices["filters"]["value"]["min_item_users"]
    assert rec.config_.max_sequence_length == 50  # the range's floor: every history is 10 steps
    validation = rec.report_["validation"]
    best_without = max(
        validation[n]["NDCG@10"] for n in ("blend_without_network", "covisitation", "itemknn", "transitions")
    )
    # the planted cycles are perfectly predictable without the network: it gets no weight
    assert best_without == 1.0
    assert rec.blend_weights_["network"] == 0.0
    assert abs(sum(rec.blend_weights_.values()) - 1.0) < 1e-6


def test_refit_learns_new_items_and_keeps_every_choice(planted, tmp_path):
    # given: a fitted model, then a day of events with an item it never saw
    rec = BehaviorRecommender(fast_config(epochs=4)).fit(planted, propensity=False)
    before = dict(rec.config_.to_dict())
    newer = _log(
        [(f"user-{u}", "sku-new", "view", T0 + 2_000_000 + u) for u in range(30)]
        + [(f"user-{u}", "sku-000", "view", T0 + 2_000_100 + u) for u in range(30)]
    )
    both = EventLog(
        np.concatenate([planted.users, newer.users]),
        np.concatenate([planted.items, newer.items]),
        np.concatenate([planted.event_types, newer.event_types]),
        np.concatenate([planted.timestamps, newer.timestamps]),
    )

    # when
    rec.refit(both)

    # then: the new item is known and similar to what followed it; the choices did not move
    assert "sku-new" in rec.item_ids_
    assert rec.config_.to_dict() == before
    assert rec.similar_items("sku-new", 3)[0][0] == "sku-000"
    rec.save(tmp_path / "m")
    assert "sku-new" in BehaviorRecommender.load(tmp_path / "m").item_ids_
