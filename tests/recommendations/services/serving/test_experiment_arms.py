"""Lists served inside an experiment: stable arms per shopper, what each arm serves, and the
experiment and arm recorded with every impression."""

from __future__ import annotations

import logging

import pytest
from django.template import Context, Template

from recommendations.models import ExperimentAssignment, Impression, ModelVersion
from recommendations.services.experiments import assignment, plans
from recommendations.services.serving import impressions, recommend_for, similar_items
from recommendations.services.serving.popularity import refresh_popularity
from tests.recommendations.conftest import days_ago

BLOCK = Template('{% load recommendations %}{% show_recommended placement="home" limit=3 %}')


def visitors_by_arm(experiment) -> dict[int, str]:
    """A visitor id that the hash puts in each arm of ``experiment``."""
    plan = plans.load_plans()[experiment.placement][0]
    found: dict[int, str] = {}
    for i in range(500):
        visitor = f"visitor-{i:04d}"
        found.setdefault(assignment.arm_for(plan, assignment.subject_of(None, visitor)).id, visitor)
        if len(found) == len(plan.arms):
            return found
    raise AssertionError("no visitor found for every arm")


def two_arm_experiment(experiment_factory, arm_factory, **kwargs):
    experiment = experiment_factory(**kwargs)
    first = arm_factory(experiment=experiment, name="popular", strategy="popularity", share=50)
    second = arm_factory(experiment=experiment, name="co-visitation", strategy="covisitation", share=50)
    return experiment, first, second


def new_process() -> None:
    """What another web process would know: nothing kept in memory."""
    plans.forget_plans()
    assignment.forget_kept()


@pytest.mark.django_db
def test_two_shoppers_keep_their_arms_and_every_impression_carries_experiment_and_arm(
    catalogue, page_request, experiment_factory, arm_factory
):
    # given a running experiment on the home block and one visitor hashed into each arm
    experiment, first, second = two_arm_experiment(experiment_factory, arm_factory)
    shoppers = visitors_by_arm(experiment)
    # when each visitor sees the block on three pages, the last one served by "another process"
    for round_ in range(3):
        if round_ == 2:
            new_process()
        for visitor in shoppers.values():
            BLOCK.render(Context({"request": page_request(visitor_id=visitor)}))
    impressions.flush()
    # then one assignment per visitor, in the arm its hash gave, and all six lists carry it
    stored = dict(ExperimentAssignment.objects.values_list("visitor_id", "arm_id"))
    assert stored == {visitor: arm for arm, visitor in shoppers.items()}
    rows = list(Impression.objects.values_list("visitor_id", "experiment_id", "arm_id", "assignment_id"))
    assert len(rows) == 6
    by_visitor = {visitor: pk for pk, visitor in ExperimentAssignment.objects.values_list("pk", "visitor_id")}
    for visitor, experiment_id, arm_id, assignment_id in rows:
        assert (experiment_id, arm_id, assignment_id) == (experiment.pk, stored[visitor], by_visitor[visitor])
    assert {first.pk, second.pk} == set(stored.values())


@pytest.mark.django_db
def test_the_popularity_arm_serves_popular_items_where_others_get_the_shoppers_own_list(
    catalogue, page_request, event_factory, user, experiment_factory, arm_factory
):
    # given a visitor whose history brings related items, and item relations from other shoppers
    from recommendations.services.serving.relations import refresh_item_relations

    for shopper in range(3):
        for sku in ("S1", "H2"):
            event_factory(
                user=None, visitor_id=f"other-{shopper}", item=_product(sku), occurred_at=days_ago(1)
            )
    refresh_item_relations()
    refresh_popularity()
    experiment, popular, covisitation = two_arm_experiment(experiment_factory, arm_factory)
    shoppers = visitors_by_arm(experiment)
    for visitor in shoppers.values():
        event_factory(user=None, visitor_id=visitor, item=_product("S1"), occurred_at=days_ago(0.01))
    # when each gets the home list
    lists = {
        arm: recommend_for(
            visitor_id=visitor,
            placement="home",
            limit=4,
            context={"request": page_request(visitor_id=visitor)},
        )
        for arm, visitor in shoppers.items()
    }
    # then the popularity arm's list is popular items only; the co-visitation arm starts with H2
    assert {entry.source for entry in lists[popular.pk].items} == {"popular"}
    assert lists[covisitation.pk].keys[0] == "H2"
    assert lists[covisitation.pk].items[0].source == "covisitation"


@pytest.mark.django_db
def test_outside_the_audience_or_in_a_stopped_arm_the_usual_list_is_served_and_nothing_recorded(
    catalogue, page_request, user, experiment_factory, arm_factory
):
    # given an experiment for anonymous visitors only, one of whose arms was stopped
    from django.utils import timezone

    experiment, first, second = two_arm_experiment(experiment_factory, arm_factory, audience="anonymous")
    second.stopped_at = timezone.now()
    second.save()
    shoppers = visitors_by_arm(experiment)
    # when a signed-in shopper and the stopped arm's visitor get the block
    BLOCK.render(Context({"request": page_request(user=user)}))
    BLOCK.render(Context({"request": page_request(visitor_id=shoppers[second.pk])}))
    BLOCK.render(Context({"request": page_request(visitor_id=shoppers[first.pk])}))
    impressions.flush()
    # then only the running arm's visitor is in the experiment
    tagged = list(Impression.objects.exclude(experiment=None).values_list("visitor_id", "arm_id"))
    assert tagged == [(shoppers[first.pk], first.pk)]
    assert Impression.objects.filter(experiment=None).count() == 2


@pytest.mark.django_db
def test_a_list_nobody_is_shown_assigns_nobody(catalogue, experiment_factory, arm_factory):
    # given a running experiment
    two_arm_experiment(experiment_factory, arm_factory)
    # when a list is built without a request (the export command)
    result = recommend_for(visitor_id="visitor-0042", placement="home", limit=3)
    # then nobody is assigned and the list is not tagged
    assert result.experiment_id is None
    assert ExperimentAssignment.objects.count() == 0


@pytest.mark.django_db
def test_a_model_arm_whose_version_is_broken_or_deleted_serves_the_active_models_list(
    active_model, page_request, event_factory, experiment_factory, arm_factory, caplog
):
    # given a model arm pinned to a version whose artefact is missing, and one whose version was deleted
    broken = ModelVersion.objects.create(number=7, artifact_path="nowhere/v7", sha256="0" * 64)
    experiment = experiment_factory()
    pinned = arm_factory(experiment=experiment, name="v7", strategy="model", model_version=broken, share=50)
    gone_version = ModelVersion.objects.create(number=8, artifact_path="nowhere/v8", sha256="0" * 64)
    deleted = arm_factory(
        experiment=experiment, name="v8", strategy="model", model_version=gone_version, share=50
    )
    gone_version.delete()
    shoppers = visitors_by_arm(experiment)
    for visitor in shoppers.values():
        for i in range(3):
            event_factory(user=None, visitor_id=visitor, item=_product(f"H{i}"), occurred_at=days_ago(0.01))
    # when both shoppers get the home list
    with caplog.at_level(logging.WARNING):
        lists = [
            recommend_for(
                visitor_id=v, placement="home", limit=4, context={"request": page_request(visitor_id=v)}
            )
            for v in shoppers.values()
        ]
    # then no error: the active version's session list, still counted in each arm, and a log line
    assert [result.model_version for result in lists] == [active_model.version_number] * 2
    assert {result.arm_id for result in lists} == {pinned.pk, deleted.pk}
    assert all(result.items and result.source == "session" for result in lists)
    assert "its model version is missing or refused" in caplog.text


@pytest.mark.django_db
def test_a_model_arm_ignores_stored_lists_of_another_version_and_scores_with_its_own(
    active_model, page_request, event_factory, user, precomputed, experiment_factory, arm_factory
):
    # given a signed-in shopper with history and a fresh stored list made by version 3
    for i in range(3):
        event_factory(user=user, item=_product(f"S{i}"), occurred_at=days_ago(1))
    precomputed(user, ["H5", "H6", "H7", "H8"], version=3)
    before = recommend_for(user=user, placement="home", limit=4, context={"request": page_request(user=user)})
    # when an experiment starts whose only arm pins the active version (v1)
    active = ModelVersion.objects.get(number=active_model.version_number)
    experiment = experiment_factory()
    arm_factory(experiment=experiment, name="v1", strategy="model", model_version=active, share=100)
    plans.forget_plans()
    during = recommend_for(user=user, placement="home", limit=4, context={"request": page_request(user=user)})
    # then outside the experiment the stored list (v3) serves; inside, version 1 scores in real time
    assert before.model_version == 3 and before.keys == ["H5", "H6", "H7", "H8"]
    assert during.model_version == active_model.version_number
    assert during.experiment_id == experiment.pk and during.keys != before.keys


@pytest.mark.django_db
def test_similar_items_on_a_product_page_follow_the_arm(
    catalogue, page_request, experiment_factory, arm_factory
):
    # given an experiment on the "similar" block
    experiment, popular, covisitation = two_arm_experiment(
        experiment_factory, arm_factory, placement="similar"
    )
    shoppers = visitors_by_arm(experiment)
    # when each visitor opens a product page
    results = {
        arm: similar_items("S1", limit=3, context={"request": page_request(visitor_id=visitor)})
        for arm, visitor in shoppers.items()
    }
    impressions.flush()
    # then each list and its impression carry the visitor's arm
    assert {arm: result.arm_id for arm, result in results.items()} == {
        popular.pk: popular.pk,
        covisitation.pk: covisitation.pk,
    }
    assert set(Impression.objects.values_list("arm_id", flat=True)) == {popular.pk, covisitation.pk}


def _product(sku: str):
    from shop.models import Product

    return Product.objects.get(sku=sku)
