"""What may be saved as an experiment: schedule, placement, arms and shares."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommendations.services.experiments import validation
from recommendations.services.experiments.validation import ArmInput


def test_arms_need_shares_summing_to_100_distinct_names_and_a_version_per_model_arm():
    # given arms with every mistake at once
    arms = [
        ArmInput("a", "model", None, 60),
        ArmInput("a", "popularity", object(), 30),
    ]
    # when
    errors = validation.arm_errors(arms)
    # then each mistake is named
    assert errors == [
        "The arms' shares sum to 90 %, not 100 %.",
        "Two arms have the same name.",
        "Arm “a” serves the behaviour network: choose the model version it pins.",
        "Arm “a” does not serve the network: leave its model version empty.",
    ]
    assert validation.arm_errors([ArmInput("only", "popularity", None, 100)]) == [
        "An experiment needs at least two arms."
    ]
    assert (
        validation.arm_errors(
            [ArmInput("a", "popularity", None, 40), ArmInput("b", "covisitation", None, 60)]
        )
        == []
    )


def test_a_stop_before_the_start_and_the_shared_popular_block_are_refused():
    now = timezone.now()
    assert validation.schedule_errors(placement="home", starts_at=now, ends_at=now - timedelta(hours=1)) == [
        "The end must be after the start."
    ]
    assert validation.schedule_errors(placement="popular", starts_at=now, ends_at=None) == [
        "The popular block is the same for every shopper: no experiment can split it."
    ]
    assert validation.schedule_errors(placement="home", starts_at=now, ends_at=now + timedelta(days=1)) == []


@pytest.mark.django_db
def test_overlap_is_per_placement_and_time(experiment_factory):
    # given an open-ended experiment on home from yesterday, and one on cart
    now = timezone.now()
    home = experiment_factory(placement="home", starts_at=now - timedelta(days=1))
    experiment_factory(placement="cart", starts_at=now - timedelta(days=1))
    # then a home experiment next week overlaps the open-ended one, a similar one does not
    assert validation.overlapping(placement="home", starts_at=now + timedelta(days=7), ends_at=None) == [home]
    assert validation.overlapping(placement="similar", starts_at=now, ends_at=None) == []
    # and one that ended before does not overlap; the experiment itself is left out when edited
    home.ends_at = now
    home.save()
    assert validation.overlapping(placement="home", starts_at=now + timedelta(hours=1), ends_at=None) == []
    assert (
        validation.overlapping(
            placement="home", starts_at=now - timedelta(hours=2), ends_at=None, exclude_pk=home.pk
        )
        == []
    )
