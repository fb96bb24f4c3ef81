"""The behaviour network learns planted sequences; the propensity head beats chance."""

from __future__ import annotations

import numpy as np
import torch

from recommendations.core.dataset import EventLog
from recommendations.core.metrics import roc_auc
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0, fast_config


def test_network_learns_a_planted_deterministic_sequence(network_model):
    # given: A -> B -> C ... cycles; the network alone must find the successor
    # when
    model = network_model

    # then
    assert model.report_["validation"]["network"]["HR@10"] >= 0.95
    assert model.blend_weights_["network"] == 1.0
    recs = model.recommend(
        [[("sku-004", "view", T0), ("sku-005", "view", T0 + 60)]], n=3, exclude=[{"sku-004", "sku-005"}]
    )
    assert recs[0][0][0] == "sku-006"


def test_sampled_softmax_learns_the_same_sequence(planted):
    # given: the catalogue is "large" for this config, so shared sampled negatives are used
    config = fast_config(
        blend=False, refit_full=False, sampled_softmax_threshold=5, num_negatives=8, epochs=15
    )

    # when
    model = BehaviorRecommender(config).fit(planted)

    # then
    assert model.report_["validation"]["network"]["HR@10"] >= 0.9


def test_report_records_each_source_and_the_choice(network_model):
    # given / when
    report = network_model.report_

    # then
    assert set(report["validation"]) == {
        "network",
        "covisitation",
        "itemknn",
        "transitions",
        "popularity",
        "blend",
    }
    assert report["selected"] == "network" and "disabled" in report["reason"]
    assert report["validation"]["covisitation"]["HR@10"] >= 0.9  # the cycle is also pure co-visitation
    assert abs(sum(report["blend_weights"].values()) - 1.0) < 1e-9
    assert report["n_items"] == 20 and report["interactions_per_second"] > 0
    assert "refit_seconds" in report


def _propensity_log(n_users: int = 300, seed: int = 1) -> tuple[EventLog, list, np.ndarray, float]:
    """Shoppers who cart an item buy within the day; browsers never do."""
    rng = np.random.default_rng(seed)
    day = 86400.0
    rows = []
    future_buyer = []
    for u in range(n_users):
        carter = rng.random() < 0.4
        for d in range(6):
            t = T0 + d * day + rng.random() * 3600
            item = f"sku-{rng.integers(0, 15)}"
            rows.append((f"u{u}", item, "view", t))
            if carter and rng.random() < 0.8:
                rows.append((f"u{u}", item, "add_to_cart", t + 60))
                rows.append((f"u{u}", item, "purchase", t + 0.4 * day))
        future_buyer.append(carter)
    u, i, t, ts = zip(*rows, strict=True)
    log = EventLog(
        np.array(u, dtype=object), np.array(i, dtype=object), np.array(t, dtype=object), np.array(ts)
    )
    return log, [f"u{k}" for k in range(n_users)], np.array(future_buyer), T0 + 6 * day


def test_propensity_head_beats_chance_on_planted_data():
    # given: train on the first 5 days; test at the start of day 6 against that day's purchases
    log, users, _, end = _propensity_log()
    cut = end - 86400.0
    train = log.subset(log.timestamps < cut)
    config = fast_config(epochs=2, propensity_horizon_days=1.0, refit_full=False)

    # when
    model = BehaviorRecommender(config).fit(train)
    by_user = train.histories()
    p = model.propensity([by_user.get(u, []) for u in users], now=cut)
    full = log.histories()
    y = np.array([any(t == "purchase" and ts >= cut for _, t, ts in full.get(u, [])) for u in users])

    # then
    assert p.shape == (len(users),) and ((p >= 0) & (p <= 1)).all()
    assert model.report_["propensity"]["trained"] is True
    assert roc_auc(y, p) > 0.8


def test_embeddings_have_the_documented_shapes(network_model):
    # given
    model = network_model

    # when
    users = model.embed_users([[("sku-001", "view", T0)], []])
    items = model.item_embeddings()

    # then
    assert users.shape == (2, 16) and users.dtype == np.float32
    assert not users[1].any()
    assert items.shape == (20, 16) and items.dtype == np.float32


def test_fit_from_packed_sequences_gives_the_same_model(planted, tmp_path):
    # given: one fit in memory, one with the sequences packed on disk (repeat mode on)
    config = fast_config(blend=False, epochs=4, repeat_head=True, train_precision="fp32")

    # when
    in_memory = BehaviorRecommender(config).fit(planted, propensity=False)
    from_disk = BehaviorRecommender(config).fit(planted, propensity=False, workdir=tmp_path)
    in_memory.refit(planted)
    from_disk.refit(planted, workdir=tmp_path)

    # then
    def losses(model):
        return [(row["loss"], row.get("valid_ndcg@10")) for row in model.report_["train_history"]]

    assert losses(in_memory) == losses(from_disk)
    for name, weight in in_memory.network_.state_dict().items():
        assert torch.equal(weight, from_disk.network_.state_dict()[name]), name
    history = [[("sku-003", "view", T0), ("sku-004", "view", T0 + 60)]]
    assert in_memory.recommend(history, n=5) == from_disk.recommend(history, n=5)
