"""The propensity head's candidates: the time-cut validation, the choice, and what an artefact keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommendations.core.dataset import EventLog
from recommendations.core.metrics import roc_auc
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.propensity import DAY, LINEAR_FEATURE_NAMES, N_FEATURES, scalar_features
from recommendations.core.propensity_choice import auc_standard_error, choose, validation_split
from recommendations.core.propensity_head import PropensityHead
from recommendations.core.propensity_linear import LogisticModel
from tests.recommendations.core.conftest import T0, fast_config
from tests.recommendations.core.test_recommender import _propensity_log

NOISE_DIM = 64


def _linear_log(n_users: int = 300, seed: int = 1) -> EventLog:
    """Busier shoppers buy more often: the daily chance to buy is linear in the log of the daily views."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        rate = np.exp(rng.normal(1.0, 1.0))
        p_buy = 1 / (1 + np.exp(2.0 - 1.2 * np.log(rate)))
        for d in range(8):
            for _ in range(rng.poisson(rate)):
                rows.append(
                    (f"u{u}", f"sku-{rng.integers(0, 30)}", "view", T0 + (d + rng.random() * 0.9) * DAY)
                )
            if rng.random() < p_buy:
                rows.append(
                    (f"u{u}", f"sku-{rng.integers(0, 30)}", "purchase", T0 + (d + rng.random() * 0.9) * DAY)
                )
    rows.sort(key=lambda r: r[3])
    u, i, t, ts = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
    return EventLog(u, i, t, ts.astype(np.float64))


def _noise_encoder(seed: int = 3):
    """An encoder whose hidden state says nothing about the shopper (random numbers)."""
    rng = np.random.default_rng(seed)
    return lambda hist: rng.normal(size=(len(hist), NOISE_DIM)).astype(np.float32)


def test_the_newest_cut_validates_and_only_closed_label_windows_train():
    # given four cuts a day apart, newest last in time, and a 1.5-day label window
    at = np.repeat([T0, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY], 4)
    y = np.tile([0.0, 1.0, 0.0, 1.0], 4)
    held_out = np.zeros(len(y), dtype=bool)

    # when
    train, valid, scheme = validation_split(at, 1.5 * DAY, y, held_out)

    # then the newest cut validates; the cut one day earlier is left out (its window reaches past
    # the newest cut, into the validation labels); the two older ones train
    assert scheme == "the newest time cut"
    assert valid.tolist() == [False] * 12 + [True] * 4
    assert train.tolist() == [True] * 8 + [False] * 8


def test_a_single_cut_validates_on_held_out_shoppers():
    at = np.full(8, T0)
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    held_out = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)

    train, valid, scheme = validation_split(at, DAY, y, held_out)

    assert scheme == "held-out shoppers"
    assert valid.tolist() == held_out.tolist() and train.tolist() == (~held_out).tolist()


def test_the_choice_is_the_simplest_within_one_standard_error_of_the_best():
    figures = {"logistic": 0.61, "network": 0.62, "blend": 0.65}
    scores = {k: {"valid_roc_auc": v} for k, v in figures.items()}
    # a lead larger than the standard error goes to the flexible candidate
    assert choose(scores, standard_error=0.02) == "blend"
    # a lead the validation set cannot resolve goes to the simplest one within reach
    assert choose(scores, standard_error=0.035) == "network"
    assert choose(scores, standard_error=0.05) == "logistic"
    assert choose(scores) == "blend"
    unknown = {"logistic": None, "network": 0.49, "blend": None}
    assert choose({k: {"valid_roc_auc": v} for k, v in unknown.items()}) == "logistic"


def test_the_auc_standard_error_shrinks_with_the_validation_set():
    # by hand: A = 0.8, Q1 = 0.8 / 1.2, Q2 = 1.28 / 1.8 on 50 + 50 cases:
    # (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500 = 0.00198, whose root is 0.0445
    assert auc_standard_error(0.8, 50, 50) == pytest.approx(0.0445, abs=0.0002)
    assert auc_standard_error(0.8, 500, 500) < auc_standard_error(0.8, 50, 50) / 3
    assert auc_standard_error(0.8, 0, 50) == float("inf")


def test_the_logistic_regression_is_chosen_where_the_scalar_features_carry_the_signal():
    # given shoppers whose chance to buy is linear in the log of their activity (the scalar
    # features say it all), and an encoder whose hidden state is noise
    log = _linear_log()
    cfg = fast_config(propensity_horizon_days=1.0)
    net = BehaviorNetwork(5, dim=NOISE_DIM, n_scalar=N_FEATURES)
    head = PropensityHead()

    # when
    report = head.fit(log, net, _noise_encoder(), cfg, lambda stage, fraction: None)

    # then validation ran on the newest cut, the logistic regression was chosen and ranks the
    # newest cut's buyers clearly better than chance, and the choice is recorded for the admin
    assert report["trained"] is True
    assert report["validation_scheme"] == "the newest time cut"
    figures = report["choice"]["validation"]
    assert set(figures) == {"logistic", "network", "blend"}
    assert report["selected"] == report["choice"]["value"] == head.model_ == "logistic"
    assert figures["logistic"] > 0.7
    assert figures["logistic"] >= max(figures.values()) - report["validation_standard_error"]
    assert report["choice"]["searched"] is True


def test_the_head_ranks_the_next_days_buyers_with_an_uninformative_encoder():
    # given shoppers who cart then buy within the day, and an encoder of noise
    log, users, _, end = _propensity_log(n_users=300, seed=5)
    cut = end - DAY
    train = log.subset(log.timestamps < cut)
    net = BehaviorNetwork(5, dim=NOISE_DIM, n_scalar=N_FEATURES)
    head = PropensityHead()
    head.fit(train, net, _noise_encoder(), fast_config(propensity_horizon_days=1.0), lambda s, f: None)

    # when
    by_user, full = train.histories(), log.histories()
    p = head.predict([by_user.get(u, []) for u in users], cut, net, _noise_encoder())

    # then
    y = np.array([any(t == "purchase" and ts >= cut for _, t, ts in full.get(u, [])) for u in users])
    assert roc_auc(y, p) > 0.8


def test_a_chosen_logistic_regression_survives_the_artefact_round_trip():
    # given a head that chose the logistic regression
    train = _linear_log()
    users, cut = sorted(set(train.users)), float(train.timestamps.max()) + 1
    net = BehaviorNetwork(5, dim=NOISE_DIM, n_scalar=N_FEATURES)
    head = PropensityHead()
    head.fit(train, net, _noise_encoder(), fast_config(propensity_horizon_days=1.0), lambda s, f: None)
    assert head.model_ == "logistic"

    # when written to tensors and metadata, and read back
    again = PropensityHead.from_saved(head.tensors(), head.meta())

    # then it scores exactly as before, without the encoder
    hists = [train.histories().get(u, []) for u in users]
    assert np.array_equal(head.predict(hists, cut, net, None), again.predict(hists, cut, net, None))
    assert again.meta()["propensity_model"] == "logistic"


def test_an_earlier_artefact_without_a_model_name_loads_as_the_network_head():
    tensors = {
        "propensity.mean": torch.zeros(N_FEATURES),
        "propensity.std": torch.ones(N_FEATURES),
    }
    head = PropensityHead.from_saved(tensors, {"has_propensity": True, "propensity_base_rate": 0.3})
    assert head.model_ == "network" and head.linear_ is None and head.trained_


def test_the_logistic_model_round_trips_through_tensors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    y = (x[:, 0] + rng.normal(scale=0.5, size=400) > 0).astype(float)
    model = LogisticModel().fit(x, y)
    again = LogisticModel.from_tensors(model.tensors("p"), "p")
    assert np.array_equal(model.predict(x), again.predict(x))
    assert roc_auc(y, model.predict(x)) > 0.9
    with pytest.raises(ValueError):
        LogisticModel.from_tensors({**model.tensors("p"), "p.coef": torch.zeros(2)}, "p")


def test_purchase_occasions_are_appended_after_the_network_columns():
    # given a shopper who bought on two days out of three active ones and carted three times
    history = [
        ("a", "add_to_cart", T0),
        ("a", "purchase", T0 + 60),
        ("b", "add_to_cart", T0 + DAY),
        ("c", "add_to_cart", T0 + DAY + 60),
        ("b", "purchase", T0 + 2 * DAY),
    ]
    # when
    x = scalar_features([history, []], T0 + 3 * DAY, occasions=True).astype(np.float64)
    # then the network's columns are unchanged, and the occasions follow
    assert x.shape == (2, len(LINEAR_FEATURE_NAMES))
    assert np.allclose(x[:, :N_FEATURES], scalar_features([history, []], T0 + 3 * DAY))
    f = dict(zip(LINEAR_FEATURE_NAMES, x[0], strict=True))
    assert f["purchase_days"] == pytest.approx(np.log1p(2))
    assert f["purchase_day_share"] == pytest.approx(2 / 3)
    assert f["cart_minus_purchase"] == pytest.approx(np.log1p(1))
    assert not x[1, N_FEATURES:].any()


def test_labels_of_one_class_give_their_rate_to_everyone():
    x = np.arange(12.0).reshape(6, 2)
    model = LogisticModel().fit(x, np.zeros(6))
    p = model.predict(x)
    assert np.allclose(p, p[0]) and p[0] < 1e-3
