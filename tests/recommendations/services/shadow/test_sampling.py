"""Which served lists a shadow candidate scores, and that the scoring waits for the request's end."""

from __future__ import annotations

import time

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections

from recommendations.models import ShadowRun, ShadowScore
from recommendations.services.serving import recommend_for
from recommendations.services.shadow import sampling
from recommendations.services.shadow.scoring import score_queued

pytestmark = pytest.mark.django_db


def test_a_list_served_with_a_request_is_scored_only_when_the_request_finishes(
    catalogue, active_model, page_request, event_factory, shadow_run_factory
):
    # given a shadow run of the active version on every request, and a visitor with history
    run = shadow_run_factory(model_version_id=active_model.version_id, sample_share=1.0)
    for sku in ("S1", "S2"):
        event_factory(user=None, visitor_id="visitor-0001", item=catalogue["shoes"][int(sku[1])])
    # when a list is served for the request
    result = recommend_for(
        visitor_id="visitor-0001", context={"request": page_request()}, placement="home", limit=5
    )
    # then nothing was scored while the request was running
    assert not ShadowScore.objects.exists()
    # when the request finishes (after its response; as Django's test client does, without
    # closing the test's database connection)
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)
    score_queued()  # what the worker does with queued jobs (a no-op where each job was its own task)
    # then the candidate's list for the same request is stored beside the served one
    score = ShadowScore.objects.get()
    assert score.run_id == run.pk
    assert str(score.recommendation_id) == result.recommendation_id
    assert score.served_keys == result.keys
    assert score.visitor_id == "visitor-0001"
    assert 0 < len(score.shadow_keys) <= 5
    assert score.overlap_at_10 == len(set(result.keys) & set(score.shadow_keys)) / len(result.keys)


def test_a_share_of_zero_samples_nothing_and_a_stopped_run_is_ignored(catalogue, shadow_run_factory):
    # given one run at share 0 and one stopped
    shadow_run_factory(sample_share=0.0)
    shadow_run_factory(is_active=False)
    # when a recorded list is served
    recommend_for(visitor_id="visitor-0002", record=True)
    # then nothing was scored
    assert not ShadowScore.objects.exists()


def test_runs_of_another_placement_are_not_sampled(shadow_run_factory):
    shadow_run_factory(placement="cart")
    assert [plan.placement for plan in sampling.runs_for("home")] == []
    assert [plan.placement for plan in sampling.runs_for("cart")] == ["cart"]


def test_a_missing_candidate_is_counted_and_the_list_is_served(
    catalogue, event_factory, shadow_run_factory, caplog
):
    # given a shadow run whose version has no artefact (it cannot load)
    run = shadow_run_factory(sample_share=1.0)
    event_factory(user=None, visitor_id="visitor-0003", item=catalogue["hats"][1])
    # when lists are served without a request (the task is enqueued at once)
    first = recommend_for(visitor_id="visitor-0003", record=True, limit=4)
    second = recommend_for(visitor_id="visitor-0003", record=True, limit=4)
    score_queued()
    # then both lists were served, nothing was stored, and each failure is counted with its reason
    assert len(first.items) == len(second.items) == 4
    assert not ShadowScore.objects.exists()
    run.refresh_from_db()
    assert run.failures == 2
    assert "missing or its artefact was refused" in run.last_error


def test_a_list_nobody_is_shown_is_not_sampled(catalogue, shadow_run_factory):
    shadow_run_factory(sample_share=1.0)
    recommend_for(visitor_id="visitor-0004", record=False)
    assert ShadowRun.objects.get().failures == 0
    assert not ShadowScore.objects.exists()


def test_with_redis_jobs_wait_in_one_queue_until_a_batch_is_full(
    redis_cache, catalogue, active_model, event_factory, shadow_run_factory, monkeypatch
):
    # given batches of 3 jobs, a drain asked for just now, and a visitor with history
    monkeypatch.setattr(sampling, "BATCH", 3)
    sampling._drain_asked_at[0] = time.monotonic()
    shadow_run_factory(model_version_id=active_model.version_id, sample_share=1.0)
    event_factory(user=None, visitor_id="visitor-0005", item=catalogue["shoes"][3])
    # when two lists are served, the jobs are queued and nothing is scored
    for _ in range(2):
        recommend_for(visitor_id="visitor-0005", record=True, limit=4)
    assert not ShadowScore.objects.exists()
    # when the third fills the batch, one task drains the queue (eager here)
    recommend_for(visitor_id="visitor-0005", record=True, limit=4)
    # then all three are scored and the queue is empty
    assert ShadowScore.objects.count() == 3
    assert sampling.take_queued(10) == []
