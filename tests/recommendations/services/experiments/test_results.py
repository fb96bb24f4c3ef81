"""Results per arm from real rows: attribution checked against the impression, per-shopper
metrics and their always-valid intervals against hand-computed values."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from recommendations.models import ExperimentAssignment, Impression
from recommendations.services.experiments.results import compute_results

pytestmark = pytest.mark.django_db


def shopper(arm, visitor: str, items=("S1", "S2")) -> tuple[ExperimentAssignment, Impression]:
    """An assigned visitor shown one list of the arm."""
    row = ExperimentAssignment.objects.create(experiment=arm.experiment, arm=arm, visitor_id=visitor)
    shown = Impression.objects.create(
        experiment=arm.experiment,
        arm=arm,
        assignment=row,
        visitor_id=visitor,
        placement=arm.experiment.placement,
        item_keys=list(items),
    )
    return row, shown


def act(
    event_factory, catalogue, visitor: str, event_type: str, sku: str, recommendation_id, value=None, **extra
):
    items = {product.sku: product for group in catalogue.values() for product in group}
    return event_factory(
        user=None,
        visitor_id=visitor,
        item=items[sku],
        event_type=event_type,
        recommendation_id=recommendation_id,
        value=None if value is None else Decimal(value),
        **extra,
    )


@pytest.fixture
def two_arms(experiment_factory, arm_factory):
    experiment = experiment_factory(starts_at=timezone.now() - timedelta(minutes=1))
    return (
        arm_factory(experiment=experiment, name="A", share=50),
        arm_factory(experiment=experiment, name="B", share=50),
    )


def test_per_arm_figures_count_only_events_that_match_their_impression(two_arms, event_factory, catalogue):
    # given arm A: four shoppers, one list each of S1 and S2
    a, b = two_arms
    lists = {name: shopper(a, name)[1] for name in ("a1", "a2", "a3", "a4")}
    # a1 clicks S1 and buys it for 10; a2 clicks S2; a3 clicks with a made-up id; a4 clicks an
    # item its list did not show; a bot clicks on a2's list
    act(event_factory, catalogue, "a1", "click", "S1", lists["a1"].recommendation_id)
    act(event_factory, catalogue, "a1", "purchase", "S1", lists["a1"].recommendation_id, "10.00")
    act(event_factory, catalogue, "a2", "click", "S2", lists["a2"].recommendation_id)
    act(event_factory, catalogue, "a3", "click", "S1", uuid.uuid4())
    act(event_factory, catalogue, "a4", "click", "H9", lists["a4"].recommendation_id)
    act(event_factory, catalogue, "a2", "click", "S1", lists["a2"].recommendation_id, is_bot=True)
    # arm B: b1 carts S1 and buys it twice (30 + 20); b2 clicks S1 with a1's recommendation id
    b1 = shopper(b, "b1")[1]
    shopper(b, "b2")
    act(event_factory, catalogue, "b1", "add_to_cart", "S1", b1.recommendation_id)
    act(event_factory, catalogue, "b1", "purchase", "S1", b1.recommendation_id, "30.00")
    act(event_factory, catalogue, "b1", "purchase", "S1", b1.recommendation_id, "20.00")
    act(event_factory, catalogue, "b2", "click", "S1", lists["a1"].recommendation_id)
    # when
    results = compute_results(a.experiment)
    # then
    arm_a, arm_b = results["arms"]
    assert (arm_a["shoppers"], arm_a["impressions"], arm_a["clicks"], arm_a["ctr"]) == (4, 4, 2, 0.5)
    assert (arm_b["shoppers"], arm_b["impressions"], arm_b["clicks"], arm_b["ctr"]) == (2, 2, 0, 0.0)
    means = {
        arm["name"]: {name: metric["mean"] for name, metric in arm["metrics"].items()}
        for arm in (arm_a, arm_b)
    }
    assert means == {
        "A": {"click_rate": 0.5, "add_to_cart_rate": 0.0, "conversion": 0.25, "revenue_per_shopper": 2.5},
        "B": {"click_rate": 0.0, "add_to_cart_rate": 0.5, "conversion": 0.5, "revenue_per_shopper": 25.0},
    }
    assert arm_a["baseline"] and not arm_b["baseline"]


def test_intervals_are_the_hand_computed_mixture_sprt_bounds(two_arms, event_factory, catalogue):
    # given conversion A: 1 of 4 shoppers, B: 1 of 2
    a, b = two_arms
    rows = [shopper(a, f"a{i}")[1] for i in range(4)] + [shopper(b, f"b{i}")[1] for i in range(2)]
    act(event_factory, catalogue, "a0", "purchase", "S1", rows[0].recommendation_id, "5.00")
    act(event_factory, catalogue, "b0", "purchase", "S1", rows[4].recommendation_id, "5.00")
    # when
    results = compute_results(a.experiment)
    # then B - A = 0.25 with V = 0.5/2 + 0.25/4 = 0.3125 (sample variances 0.5 and 0.25),
    # tau2 = 0.05^2 (0.5 + 0.25) = 0.001875, radius = sqrt(2V(V+tau2)/tau2 (ln 20 + ln((V+tau2)/V)/2))
    # = 17.72685; ln Lambda < 0, so p = 1
    versus = results["arms"][1]["metrics"]["conversion"]["vs_baseline"]
    assert versus["estimate"] == pytest.approx(0.25)
    assert versus["lower"] == pytest.approx(0.25 - 17.72685, abs=1e-5)
    assert versus["upper"] == pytest.approx(0.25 + 17.72685, abs=1e-5)
    assert versus["p_value"] == 1.0 and versus["significant"] is False
    # and A's own conversion 0.25 +- 6.154992 (V = 0.25/4, tau2 = 0.05^2 * 0.25)
    own = results["arms"][0]["metrics"]["conversion"]["interval"]
    assert own["lower"] == pytest.approx(0.25 - 6.154992, abs=1e-5)
    assert results["arms"][0]["metrics"]["conversion"]["vs_baseline"] is None


def test_a_recommendation_id_of_another_experiment_or_no_impression_attributes_nothing(
    two_arms, event_factory, catalogue, experiment_factory, arm_factory
):
    # given a shopper of this experiment and a list of another experiment
    a, _ = two_arms
    shopper(a, "a1")
    elsewhere = arm_factory(experiment=experiment_factory(placement="cart"), name="X", share=100)
    _, foreign = shopper(elsewhere, "a1")
    # when a1 buys with the other experiment's id, and with an id no list ever had
    act(event_factory, catalogue, "a1", "purchase", "S1", foreign.recommendation_id, "99.00")
    act(event_factory, catalogue, "a1", "purchase", "S1", uuid.uuid4(), "99.00")
    results = compute_results(a.experiment)
    # then nothing counts for this experiment
    conversion = results["arms"][0]["metrics"]["conversion"]
    assert conversion["mean"] == 0.0 and results["arms"][0]["metrics"]["revenue_per_shopper"]["mean"] == 0.0


def test_a_shopper_who_logged_in_keeps_their_purchases_attributed(two_arms, event_factory, catalogue, user):
    # given a visitor shown a list, whose assignment became the user's at login
    a, _ = two_arms
    row, shown = shopper(a, "visitor-erin")
    ExperimentAssignment.objects.filter(pk=row.pk).update(user=user)
    # when the signed-in user (a new visitor id) buys the item
    items = {product.sku: product for group in catalogue.values() for product in group}
    event_factory(
        user=user,
        visitor_id="renewed-id",
        item=items["S2"],
        event_type="purchase",
        recommendation_id=shown.recommendation_id,
        value=Decimal("12.50"),
    )
    # then the purchase is the assigned shopper's
    metrics = compute_results(a.experiment)["arms"][0]["metrics"]
    assert metrics["conversion"]["mean"] == 1.0 and metrics["revenue_per_shopper"]["mean"] == 12.5
