"""The propensity head's time cuts: the configured label window, or a shorter one on a short log."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.metrics import roc_auc
from recommendations.core.propensity import DAY, label_cuts
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0, fast_config
from tests.recommendations.core.test_recommender import _propensity_log


def test_a_long_log_keeps_the_configured_window():
    # given 60 days of events and a 7-day window
    cuts, window = label_cuts(T0, T0 + 60 * DAY, 7 * DAY)
    # then eight cuts, half a window apart, the newest a full window before the last event
    assert window == 7 * DAY
    assert cuts == [T0 + 53 * DAY - k * 3.5 * DAY for k in range(8)]


def test_a_log_shorter_than_the_window_gets_a_third_of_its_span():
    # given a week's export and the default 7-day window, which needs 10.5 days (half a window of
    # history before the cut, the whole window after it) and so leaves no cut
    start, end = T0, T0 + 7 * DAY
    # when
    cuts, window = label_cuts(start, end, 7 * DAY)
    # then the window is a third of the week, with several cuts inside it
    assert window == pytest.approx(7 * DAY / 3)
    assert len(cuts) >= 3
    for cut in cuts:
        assert cut + window <= end  # the label window lies inside the log
        assert cut - start >= max(window / 2, DAY) - 1e-6  # with history before it


def test_no_span_no_cut():
    assert label_cuts(T0, T0, 7 * DAY) == ([], 7 * DAY)
    assert label_cuts(T0, T0 + 7 * DAY, 0.0) == ([], 0.0)


def test_a_head_is_trained_on_a_log_shorter_than_its_horizon():
    # given five days of shoppers who cart and then buy within the day, and the default 7-day horizon
    log, users, _, end = _propensity_log()
    cut = end - DAY
    train = log.subset(log.timestamps < cut)
    config = fast_config(epochs=2, propensity_horizon_days=7.0, refit_full=False)

    # when
    model = BehaviorRecommender(config).fit(train)

    # then a head is trained on a shorter window (not the base rate for everyone), says so,
    # and ranks the next day's buyers
    report = model.report_["propensity"]
    assert report["trained"] is True
    assert report["configured_horizon_days"] == 7.0
    assert 1.0 < report["horizon_days"] < 2.0  # a third of the ~5 days before the cut
    by_user = train.histories()
    p = model.propensity([by_user.get(u, []) for u in users], now=cut)
    full = log.histories()
    y = np.array([any(t == "purchase" and ts >= cut for _, t, ts in full.get(u, [])) for u in users])
    assert roc_auc(y, p) > 0.8
