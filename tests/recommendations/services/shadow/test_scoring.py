"""The shadow candidate's list for one request: overlap, idempotence, erased shoppers, failures."""

from __future__ import annotations

import uuid

import pytest

from recommendations.models import ShadowScore
from recommendations.models.privacy import ErasedSubject, subject_hash
from recommendations.services.shadow.scoring import overlap_at, score_request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("served", "shadow", "expected"),
    [
        (["A", "B", "C", "D"], ["D", "X", "A"], 0.5),
        (["A", "B"], ["B", "A"], 1.0),
        ([], ["A"], 0.0),
        ([f"k{i}" for i in range(12)], ["k10", "k11", "k0"], 0.1),  # only the first 10 of each count
    ],
)
def test_overlap_at_10(served, shadow, expected):
    assert overlap_at(served, shadow) == pytest.approx(expected)


def test_scoring_twice_stores_one_row(catalogue, active_model, event_factory, shadow_run_factory):
    # given a visitor who looked at hats, and a shadow run of the active version
    run = shadow_run_factory(model_version_id=active_model.version_id)
    event_factory(user=None, visitor_id="visitor-0010", item=catalogue["hats"][2])
    recommendation_id = str(uuid.uuid4())
    # when the same request is scored twice (a redelivered task)
    first = score_request(run.pk, recommendation_id, None, "visitor-0010", ["H1", "H3"], 4)
    second = score_request(run.pk, recommendation_id, None, "visitor-0010", ["H1", "H3"], 4)
    # then one row; the candidate leaves out the item just looked at
    assert (first.status, second.status) == ("scored", "duplicate")
    score = ShadowScore.objects.get()
    assert "H2" not in score.shadow_keys
    assert score.overlap_at_10 == first.overlap


def test_an_erased_shopper_is_not_scored(catalogue, active_model, event_factory, shadow_run_factory):
    run = shadow_run_factory(model_version_id=active_model.version_id)
    event_factory(user=None, visitor_id="visitor-0011", item=catalogue["hats"][2])
    ErasedSubject.objects.create(kind="visitor", subject_hash=subject_hash("visitor", "visitor-0011"))
    outcome = score_request(run.pk, str(uuid.uuid4()), None, "visitor-0011", ["H1"], 4)
    assert outcome.status == "erased"
    assert not ShadowScore.objects.exists()


def test_a_stopped_run_scores_nothing(shadow_run_factory):
    run = shadow_run_factory(is_active=False)
    assert score_request(run.pk, str(uuid.uuid4()), None, "visitor-0012", ["H1"], 4).status == "gone"
    assert score_request(run.pk + 1000, str(uuid.uuid4()), None, "visitor-0012", ["H1"], 4).status == "gone"


def test_a_shopper_without_history_is_not_scored(active_model, shadow_run_factory):
    run = shadow_run_factory(model_version_id=active_model.version_id)
    assert score_request(run.pk, str(uuid.uuid4()), None, "visitor-0013", ["H1"], 4).status == "no_history"
    run.refresh_from_db()
    assert run.failures == 0
