"""The Django-free profile core on hand-made arrays: features, scaling, segments, outliers, rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from recommendations.core.profiles import (
    FeatureScaler,
    ProfileEvents,
    compute_features,
    detect_outliers,
    evaluate_rules,
    fit_segments,
    resolve_thresholds,
    validate_rule,
)
from recommendations.core.profiles.outliers import knee_eps

NOW = 1_700_000_000.0
DAY = 86_400.0


def events(rows, n_users, categories=("Books", "Garden")):
    """rows: (user, type, seconds before NOW, value, category, price)."""
    u, t, ts, v, c, p = zip(*rows, strict=True)
    return ProfileEvents(
        n_users=n_users,
        users=np.array(u),
        event_types=np.array(t, dtype=object),
        timestamps=NOW - np.array(ts, float),
        values=np.array(v, float),
        quantities=np.ones(len(u)),
        categories=np.array(c),
        prices=np.array(p, float),
        is_bot=np.zeros(len(u), bool),
        category_names=list(categories),
    )


def test_features_on_hand_made_events():
    # given user 0: 2 views, a cart and a purchase (value 30) in one session 2 days ago; user 1: 3 views
    # in the same minute a day ago, in Garden, at twice the median price; user 2: nothing
    nan = float("nan")
    table = compute_features(
        events(
            [
                (0, "view", 2 * DAY + 300, nan, 0, 10.0),
                (0, "view", 2 * DAY + 200, nan, 0, 10.0),
                (0, "add_to_cart", 2 * DAY + 100, nan, 0, 10.0),
                (0, "purchase", 2 * DAY, 30.0, 0, 10.0),
                (1, "view", DAY + 20, nan, 1, 40.0),
                (1, "view", DAY + 10, nan, 1, 40.0),
                (1, "view", DAY + 5, nan, 1, 40.0),
            ],
            3,
        ),
        now=NOW,
        category_median_price=np.array([10.0, 20.0]),
        event_weights={"view": 1, "purchase": 5},
    )
    # then
    row = dict(zip(table.columns, table.values[0], strict=True))
    assert row["recency_days"] == pytest.approx(2.0)
    assert row["frequency"] == 1 and row["monetary"] == 30 and row["avg_order_value"] == 30
    assert row["views"] == 2 and row["carts"] == 1 and row["purchases"] == 1
    assert row["conversion_rate"] == 0.5 and row["cart_abandonment_rate"] == 0.0
    assert row["sessions"] == 1 and row["events_per_session"] == 4 and row["price_level"] == 1.0
    other = dict(zip(table.columns, table.values[1], strict=True))
    assert other["peak_events_per_minute"] == 3 and other["price_level"] == 2.0
    assert other["monetary"] == 0.0
    assert np.isnan(other["purchase_recency_days"]) and other["affinity:Garden"] == 1.0
    assert table.top_categories[1] == [("Garden", 1.0)]
    assert np.isnan(table.values[2, 0]) and table.notes[2][0] == {"code": "no_events", "params": {}}


def test_scaler_fills_medians_and_round_trips_through_json():
    # given
    values = np.array([[1.0, 0.1], [3.0, np.nan], [np.nan, 0.3], [100.0, 0.2]])
    scaler = FeatureScaler().fit(values, ["events", "conversion_rate"])
    # when
    restored = FeatureScaler.from_dict(scaler.to_dict())
    # then
    assert scaler.medians_.tolist() == [3.0, 0.2]
    assert np.allclose(restored.transform(values), scaler.transform(values))
    assert scaler.choices()["events"].startswith("median fill, log1p, robust")
    assert scaler.choices()["conversion_rate"] == "median fill, standard scaling"


def test_segments_recover_three_planted_blobs_and_k_by_silhouette():
    # given three well separated blobs
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 6]])
    truth = np.repeat([0, 1, 2], 200)
    data = centres[truth] + rng.normal(scale=0.5, size=(600, 3))
    # when
    model = fit_segments(data, k_range=(2, 6))
    # then
    assert model.k == 3
    assert adjusted_rand_score(truth, model.predict(data)) == 1.0


def test_fixed_k_and_minibatch_above_threshold():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 2))
    model = fit_segments(data, k=4, minibatch_threshold=100)
    assert model.k == 4 and model.algorithm == "MiniBatchKMeans"


def test_dbscan_flags_isolated_points_and_small_dense_groups():
    # given 1000 normal users, 10 isolated extremes and a tight group of 12 bot-like users
    rng = np.random.default_rng(2)
    normal = rng.normal(size=(1000, 2))
    extremes = rng.normal(size=(10, 2)) * 0.1 + np.array([[12, 12]]) + np.arange(10)[:, None] * 3
    bots = rng.normal(size=(12, 2)) * 0.05 + np.array([[-15, 8]])
    data = np.vstack([normal, extremes, bots])
    # when
    model, flagged = detect_outliers(data, min_samples=5)
    # then
    assert flagged[1000:].all()
    assert flagged[:1000].mean() < 0.02
    assert model.eps_source == "knee of the k-distance curve" and model.eps == pytest.approx(
        knee_eps(data, 5)
    )


@pytest.mark.parametrize(
    "rule, problem",
    [
        ({"label": "x", "feature": "views", "operator": "~", "threshold": 1}, "'operator' must be one of"),
        ({"label": "x", "feature": "views", "operator": ">"}, "exactly one of 'threshold' or 'percentile'"),
        ({"label": "x", "feature": "views", "operator": ">", "percentile": 120}, "between 0 and 100"),
        ({"label": "", "feature": "views", "operator": ">", "threshold": 1}, "'label' must be"),
        (
            {"label": "x", "feature": "views", "operator": ">", "threshold": 1, "colour": "red"},
            "unknown key(s) colour",
        ),
    ],
)
def test_invalid_rules_are_explained(rule, problem):
    assert any(problem in error for error in validate_rule(rule))


def test_rules_resolve_percentiles_among_known_non_zero_values_and_keep_reasons():
    # given monetary 0 (non-buyers) for most, and 10..100 for ten buyers
    values = np.array([[0.0]] * 20 + [[float(x)] for x in range(10, 101, 10)])
    rules = [{"label": "high value", "feature": "monetary", "operator": ">", "percentile": 90}]
    # when
    resolved = resolve_thresholds(rules, ["monetary"], values)
    tags = evaluate_rules(resolved, ["monetary"], values)
    # then
    assert resolved[0]["conditions"][0]["threshold"] == pytest.approx(91.0)
    assert [i for i, row in enumerate(tags) if row] == [29]
    assert tags[29][0]["reasons"] == [
        {"feature": "monetary", "value": 100.0, "operator": ">", "threshold": 91.0, "percentile": 90}
    ]
