"""The pieces that make training fast keep its semantics: batching, dropout, features, refit."""

from __future__ import annotations

import math
import resource

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recommendations.core.config import NetworkConfig
from recommendations.core.models.behavior_network import BehaviorNetwork, fast_dropout
from recommendations.core.propensity import FEATURE_NAMES, scalar_features
from recommendations.core.recommender import BehaviorRecommender
from recommendations.core.runtime import cpu_has_native_bf16, keep_freed_heap, release_freed_heap
from recommendations.core.trainer import training_precision
from recommendations.core.training_batches import length_bucketed_batches
from tests.recommendations.core.conftest import T0, fast_config

HOUR = 3600.0


def test_length_bucketed_batches_cover_every_window_once_with_similar_lengths():
    # given: 1,000 windows of random lengths
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 51, 1000))

    # when
    batches = length_bucketed_batches(lengths, 32, torch.Generator().manual_seed(0))

    # then: a permutation, and batches far narrower in length than random draws
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([int(lengths[b].max() - lengths[b].min()) for b in batches])
    assert spread < 10


def test_fast_dropout_keeps_the_expectation_and_drops_the_asked_share():
    # given
    torch.manual_seed(0)
    x = torch.ones(200_000)

    # when
    y = fast_dropout(x, 0.5, training=True)

    # then
    assert abs(float((y == 0).float().mean()) - 0.5) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert torch.equal(fast_dropout(x, 0.5, training=False), x)


def test_scalar_features_match_hand_computed_values():
    # given: one shopper with a view, a cart and a purchase, one without events before now
    now = T0 + 2 * 86400
    history = [
        ("a", "view", T0),
        ("b", "add_to_cart", now - 2 * HOUR),
        ("b", "purchase", now - HOUR),
        ("c", "view", now + 10),  # after now: ignored
    ]

    # when
    x = np.expm1(scalar_features([history, []], now).astype(np.float64))

    # then
    f = dict(zip(FEATURE_NAMES, x[0], strict=True))
    assert math.isclose(f["recency_h"], 1.0, rel_tol=1e-5)
    assert math.isclose(f["events"], 3.0, rel_tol=1e-5)
    assert math.isclose(f["items"], 2.0, rel_tol=1e-5)
    assert math.isclose(f["active_days"], 2.0, rel_tol=1e-5)
    assert f["cart_not_bought"] == 0.0
    assert math.isclose(f["hours_since_cart"], 2.0, rel_tol=1e-5)
    assert math.isclose(f["events_24h"], 2.0, rel_tol=1e-5)
    assert math.isclose(f["span_days"], 2.0 - 1 / 24, rel_tol=1e-4)
    assert np.allclose([f["n_view"], f["n_purchase_24h"], f["n_view_24h"]], [1.0, 1.0, 0.0], rtol=1e-5)
    empty = dict(zip(FEATURE_NAMES, x[1], strict=True))
    assert math.isclose(empty["recency_h"], 24.0 * 365, rel_tol=1e-4) and empty["events"] == 0


def test_refit_continues_for_one_epoch_or_retrains_from_scratch(planted):
    # given / when
    cont = BehaviorRecommender(fast_config(epochs=4, patience=4)).fit(planted)
    scratch = BehaviorRecommender(fast_config(epochs=4, patience=4, refit_epochs=0)).fit(planted)

    # then
    assert cont.report_["refit_epochs"] == 1
    assert scratch.report_["refit_epochs"] == scratch.report_["epochs"]
    assert set(cont.report_["stage_seconds"]) >= {"prepare", "train", "refit", "propensity"}


def test_bf16_training_learns_the_planted_sequence_with_float32_weights(planted):
    # given: bfloat16 matrix products forced (emulated by oneDNN where the CPU lacks them)
    config = fast_config(blend=False, refit_full=False, train_precision="bf16")

    # when
    model = BehaviorRecommender(config).fit(planted)

    # then: it learns as float32 training does, and the weights it keeps are float32
    assert model.report_["validation"]["network"]["HR@10"] >= 0.9
    assert {p.dtype for p in model.network_.parameters()} == {torch.float32}
    assert np.isfinite([h["loss"] for h in model.report_["train_history"]]).all()


def test_train_precision_auto_is_mixed_where_the_device_has_half_precision():
    # given
    auto = NetworkConfig(train_precision="auto")

    # when / then
    assert training_precision(auto, torch.device("cpu")) == ("bf16" if cpu_has_native_bf16() else "fp32")
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert training_precision(auto, torch.device("cuda")) == ("bf16" if cuda_bf16 else "fp16")
    assert training_precision(NetworkConfig(train_precision="fp32"), torch.device("cpu")) == "fp32"
    assert training_precision(NetworkConfig(train_precision="bf16"), torch.device("cpu")) == "bf16"
    assert training_precision(NetworkConfig(train_precision="fp16"), torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError, match="train_precision"):
        NetworkConfig(train_precision="fp8")


def test_kept_heap_reuses_freed_tensors_instead_of_faulting_fresh_pages():
    # given: the allocator tuned (idempotent; False off glibc, where there is nothing to check)
    if not keep_freed_heap():
        pytest.skip("not glibc")
    torch.ones(2_500_000).sum()  # the heap has grown to hold one 10 MB tensor once

    # when: twenty more 10 MB tensors are written and freed one after the other
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total = sum(float(torch.full((2_500_000,), 1.0).sum()) for _ in range(20))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    release_freed_heap()

    # then: the same pages serve each (fresh pages would be 20 x 2,441 faults)
    assert total == 20 * 2_500_000
    assert faults < 2_000


def test_loss_without_zeroing_padded_steps_equals_the_loss_on_encode():
    # given: left-padded windows (some mostly padding) and a network with dropout, same random draws
    torch.manual_seed(0)
    items = torch.randint(1, 31, (16, 12))
    items[:, :4] = 0
    items[:3, :10] = 0
    types, gaps = (items > 0).long() * 2, (items > 0).long() * 3
    labels = torch.randint(1, 31, (16, 12)) * (items > 0)
    net = BehaviorNetwork(30, dim=16, layers=2, heads=2, dropout=0.2, max_length=12, repeat=False).train()

    def grads(loss):
        net.zero_grad()
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    # when
    torch.manual_seed(1)
    fast = grads(net.next_item_loss(items, types, gaps, labels))
    torch.manual_seed(1)
    keep = labels > 0
    plain = grads(F.cross_entropy(net.scores(net.encode(items, types, gaps)[keep]), labels[keep] - 1))

    # then
    assert math.isclose(fast[0], plain[0], rel_tol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(fast[1], plain[1], strict=True))
