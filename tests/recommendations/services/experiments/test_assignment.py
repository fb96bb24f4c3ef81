"""Assignment: a salted hash the same in every process, stored at first exposure, the user's after
login, removed by erasure."""

from __future__ import annotations

import pytest
from django.test import Client

from recommendations.models import ErasedSubject, ExperimentAssignment, Impression
from recommendations.models.privacy import subject_hash
from recommendations.services.experiments import assignment, plans
from recommendations.services.experiments.plans import ArmPlan, ExperimentPlan
from recommendations.services.privacy import forget_user
from recommendations.services.serving import impressions

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
PASSWORD = "secret-pass-123"  # tests.factories.UserFactory's


def _plan(*shares: int, salt: str = "0123456789abcdef") -> ExperimentPlan:
    from django.utils import timezone

    arms = tuple(
        ArmPlan(i + 1, f"arm {i}", "popularity", None, share, False) for i, share in enumerate(shares)
    )
    return ExperimentPlan(1, "home", salt, "everyone", timezone.now(), None, arms)


def test_the_bucket_is_a_fixed_function_of_salt_and_shopper():
    # sha256("0123456789abcdef:u:42"), first 8 bytes big-endian, mod 10,000: the same in every
    # process and release (a change here would move every running experiment's shoppers)
    assert assignment.bucket("0123456789abcdef", "u:42") == 7864
    assert assignment.bucket("0123456789abcdef", "v:visitor-0001") == 5946
    assert assignment.bucket("another-salt", "u:42") != 7864


def test_shares_split_shoppers_in_proportion():
    # given arms of 20 % and 80 %
    plan = _plan(20, 80)
    # when 10,000 shoppers are hashed
    first = sum(assignment.arm_for(plan, f"u:{user}").id == 1 for user in range(10_000))
    # then about a fifth land in the first arm (binomial sd: 40)
    assert 1880 <= first <= 2120


@pytest.mark.django_db
def test_first_exposure_stores_the_arm_and_later_ones_read_it(experiment_factory, arm_factory, user):
    # given a running experiment
    experiment = experiment_factory()
    arm_factory(experiment=experiment, share=30)
    arm_factory(experiment=experiment, share=70)
    plan = plans.running_plan("home")
    # when the same shopper is exposed twice, the second time in "another process"
    first = assignment.expose(plan, user_id=user.pk, visitor_id="")
    assignment.forget_kept()
    second = assignment.expose(plan, user_id=user.pk, visitor_id="")
    # then one stored row, the hashed arm both times
    assert first == second
    row = ExperimentAssignment.objects.get()
    assert (row.user_id, row.visitor_id, row.arm_id) == (user.pk, "", first.arm.id)
    assert first.arm.id == assignment.arm_for(plan, f"u:{user.pk}").id


@pytest.mark.django_db
def test_a_stored_arm_wins_over_the_hash(experiment_factory, arm_factory, user):
    # given a shopper stored in the arm the hash would not give them
    experiment = experiment_factory()
    arms = [arm_factory(experiment=experiment, share=50), arm_factory(experiment=experiment, share=50)]
    plan = plans.running_plan("home")
    hashed = assignment.arm_for(plan, f"u:{user.pk}").id
    other = next(arm for arm in arms if arm.pk != hashed)
    ExperimentAssignment.objects.create(experiment=experiment, arm=other, user=user)
    # when exposed
    exposure = assignment.expose(plan, user_id=user.pk, visitor_id="")
    # then the stored arm serves
    assert exposure.arm.id == other.pk


@pytest.mark.django_db
def test_an_erased_shopper_is_never_assigned_again(experiment_factory, arm_factory, user):
    # given a tombstone for the user
    experiment = experiment_factory()
    arm_factory(experiment=experiment, share=100)
    ErasedSubject.objects.create(kind="user", subject_hash=subject_hash("user", user.pk))
    # when exposed
    exposure = assignment.expose(plans.running_plan("home"), user_id=user.pk, visitor_id="")
    # then
    assert exposure is None and ExperimentAssignment.objects.count() == 0


@pytest.mark.django_db
def test_the_visitors_arm_becomes_the_users_at_login_and_erasure_removes_it(
    catalogue, user_factory, experiment_factory, arm_factory
):
    # given an experiment on the home page and an anonymous browser that saw it
    user = user_factory(username="erin")
    experiment = experiment_factory()
    arm_factory(experiment=experiment, share=50)
    arm_factory(experiment=experiment, share=50)
    browser = Client(HTTP_USER_AGENT=BROWSER)
    assert browser.get("/").status_code == 200
    anonymous = ExperimentAssignment.objects.get()
    assert anonymous.user_id is None and anonymous.visitor_id
    # when the shopper logs in (the visitor id is renewed) and opens the home page again
    assert browser.post("/accounts/login/", {"username": "erin", "password": PASSWORD}).status_code == 302
    assert browser.get("/").status_code == 200
    impressions.flush()
    # then the same row is now the user's, and both pages' lists carry it
    row = ExperimentAssignment.objects.get()
    assert (row.pk, row.arm_id, row.user_id) == (anonymous.pk, anonymous.arm_id, user.pk)
    home = Impression.objects.filter(placement="home").order_by("created_at")
    shown = list(home.values_list("user_id", "assignment_id", "arm_id"))
    assert shown == [(None, row.pk, row.arm_id), (user.pk, row.pk, row.arm_id)]
    # when the user is erased
    result = forget_user(user, requested_by="tests")
    # then their assignment and impressions are gone
    assert result.counts["experiment_assignments"] == 1
    assert ExperimentAssignment.objects.count() == 0 and Impression.objects.count() == 0
