"""The guardrail, the results kept at the end (and retention), and "promote the winner"."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from behavior.models import Event
from recommendations.models import Experiment, ExperimentArm, ExperimentAssignment, Impression, ModelVersion
from recommendations.services.experiments import lifecycle
from recommendations.services.retention import prune_serving_data
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def populate(arm, product, *, shoppers: int, buyers: int, prefix: str) -> None:
    """``shoppers`` assigned visitors shown one list each; the first ``buyers`` buy from it."""
    rows = ExperimentAssignment.objects.bulk_create(
        ExperimentAssignment(experiment=arm.experiment, arm=arm, visitor_id=f"{prefix}{i}")
        for i in range(shoppers)
    )
    shown = Impression.objects.bulk_create(
        Impression(
            experiment=arm.experiment,
            arm=arm,
            assignment=row,
            visitor_id=row.visitor_id,
            placement="home",
            item_keys=[product.sku],
        )
        for row in rows
    )
    Event.objects.bulk_create(
        Event(
            visitor_id=impression.visitor_id,
            item=product,
            event_type="purchase",
            value=Decimal("20.00"),
            recommendation_id=impression.recommendation_id,
        )
        for impression in shown[:buyers]
    )


@pytest.fixture
def experiment(experiment_factory, arm_factory):
    running = experiment_factory(starts_at=timezone.now() - timedelta(minutes=5))
    arm_factory(experiment=running, name="baseline", share=50)
    arm_factory(experiment=running, name="challenger", share=50, strategy="covisitation")
    return running


def test_the_guardrail_stops_an_arm_whose_conversion_is_significantly_worse(experiment, product):
    # given 200 shoppers per arm: the baseline converts 30 %, the challenger 1 %
    baseline, challenger = experiment.arms.order_by("pk")
    populate(baseline, product, shoppers=200, buyers=60, prefix="b")
    populate(challenger, product, shoppers=200, buyers=2, prefix="c")
    # when the hourly check runs
    counts = lifecycle.check_experiments()
    # then the challenger is stopped with the reason, the baseline serves on
    challenger.refresh_from_db()
    baseline.refresh_from_db()
    assert counts == {"checked": 1, "arms_stopped": 1, "finalized": 0}
    assert challenger.stopped_at is not None and "significantly worse" in challenger.stopped_reason
    assert baseline.stopped_at is None


def test_the_guardrail_leaves_a_small_or_insignificant_difference_alone(experiment, product, settings):
    # given 30 % against 27 % over 200 shoppers each, and a tiny experiment below the minimum
    baseline, challenger = experiment.arms.order_by("pk")
    populate(baseline, product, shoppers=200, buyers=60, prefix="b")
    populate(challenger, product, shoppers=200, buyers=54, prefix="c")
    # when checked
    stopped = lifecycle.apply_guardrail(experiment)
    # then nothing stops
    assert stopped == [] and not ExperimentArm.objects.exclude(stopped_at=None).exists()


def test_retention_keeps_a_running_experiments_impressions_and_deletes_them_once_results_are_kept(
    experiment, product, settings
):
    # given impressions older than the retention: one outside experiments, 10 of the experiment
    settings.RECOMMENDER = {**settings.RECOMMENDER, "IMPRESSION_RETENTION_DAYS": 30}
    Experiment.objects.filter(pk=experiment.pk).update(starts_at=timezone.now() - timedelta(days=60))
    experiment.refresh_from_db()
    baseline, challenger = experiment.arms.order_by("pk")
    populate(baseline, product, shoppers=6, buyers=3, prefix="b")
    populate(challenger, product, shoppers=4, buyers=1, prefix="c")
    Impression.objects.create(placement="home", item_keys=["X"])
    old = timezone.now() - timedelta(days=40)
    Impression.objects.update(created_at=old)
    # when retention runs while the experiment runs
    first = prune_serving_data(now=timezone.now())
    # then only the impression outside the experiment went
    assert first["impressions"] == 1 and Impression.objects.count() == 10
    # when the experiment ends and retention runs again
    Experiment.objects.filter(pk=experiment.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    experiment.refresh_from_db()
    second = prune_serving_data(now=timezone.now())
    # then its results were kept first, and its impressions are gone
    experiment.refresh_from_db()
    assert second["impressions"] == 10 and not Impression.objects.exists()
    kept = {
        arm["name"]: (arm["shoppers"], arm["metrics"]["conversion"]["mean"])
        for arm in experiment.final_results["arms"]
    }
    assert kept == {"baseline": (6, 0.5), "challenger": (4, 0.25)}
    assert experiment.finalized_at is not None


def test_promoting_the_winner_activates_its_version_ends_the_experiment_and_records_who(
    experiment_factory, arm_factory, version_factory
):
    # given v1 active, and an experiment between v1 and v2 (whose guard verdict was negative)
    v1 = version_factory(1, status="active")
    v2 = version_factory(2, metrics={"NDCG@10": 0.05}, baseline_metrics={"popularity": {"NDCG@10": 0.1}})
    running = experiment_factory()
    arm_factory(experiment=running, name="v1", strategy="model", model_version=v1)
    winner = arm_factory(experiment=running, name="v2", strategy="model", model_version=v2)
    # when staff promote arm v2
    promotion = lifecycle.promote_winner(running, winner, by="admin:ops")
    # then v2 is active through the registry, with the experiment in its reason
    v1.refresh_from_db()
    v2.refresh_from_db()
    running.refresh_from_db()
    assert (v1.status, v2.status, v2.promoted_by) == ("retired", "active", "admin:ops")
    assert f"winner of experiment {running.pk}" in v2.status_reason
    assert running.promoted_arm == winner and running.promoted_by == "admin:ops"
    assert running.ends_at is not None and running.final_results is not None
    # and the guard's objection is returned for staff to see
    assert promotion.verdict.promote is False and "popularity" in promotion.verdict.reason


def test_a_strategy_arm_has_nothing_to_promote(experiment):
    # given the co-visitation arm
    challenger = experiment.arms.get(name="challenger")
    # when / then
    with pytest.raises(lifecycle.PromotionRefused):
        lifecycle.promote_winner(experiment, challenger, by="admin:ops")
    assert not ModelVersion.objects.exists()
