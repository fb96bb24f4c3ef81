"""Experiments in the admin: refused input with its reason, a valid experiment saved, the results
page with its figures and charts, and "promote the winner" audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from recommendations.models import Experiment, ExperimentAssignment, Impression
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

ADD = "admin:recommendations_experiment_add"


def form_data(*arms, placement="home", starts_at=None, ends_at=""):
    """The add form's POST data with ``arms`` as (name, strategy, version id or "", share)."""
    start = starts_at or timezone.now() + timedelta(hours=1)
    data = {
        "name": "Network against popularity",
        "placement": placement,
        "audience": "everyone",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": ends_at and ends_at.strftime("%Y-%m-%d"),
        "ends_at_1": ends_at and ends_at.strftime("%H:%M:%S"),
        "arms-TOTAL_FORMS": str(len(arms)),
        "arms-INITIAL_FORMS": "0",
        "arms-MIN_NUM_FORMS": "0",
        "arms-MAX_NUM_FORMS": "1000",
    }
    for i, (name, strategy, version, share) in enumerate(arms):
        data.update(
            {
                f"arms-{i}-name": name,
                f"arms-{i}-strategy": strategy,
                f"arms-{i}-model_version": version,
                f"arms-{i}-share": str(share),
            }
        )
    return data


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_a_valid_experiment_is_saved_with_its_arms(staff_client, version_factory):
    # given a model version
    version = version_factory(1, status="active")
    # when staff add an experiment of two arms, 70 / 30
    response = staff_client.post(
        reverse(ADD), form_data(("network", "model", version.pk, 70), ("popular", "popularity", "", 30))
    )
    # then it is saved with its arms and who created it
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.get()
    arms = list(experiment.arms.order_by("pk").values_list("name", "strategy", "model_version_id", "share"))
    assert arms == [("network", "model", version.pk, 70), ("popular", "popularity", None, 30)]
    assert experiment.created_by.startswith("admin:") and len(experiment.salt) == 16


@pytest.mark.parametrize(
    ("arms", "extra", "message"),
    [
        ((("a", "popularity", "", 60), ("b", "covisitation", "", 30)), {}, "sum to 90 %, not 100 %"),
        ((("a", "popularity", "", 100),), {}, "at least two arms"),
        ((("a", "model", 999_999, 50), ("b", "popularity", "", 50)), {}, "Select a valid choice"),
        ((("a", "model", "", 50), ("b", "popularity", "", 50)), {}, "choose the model version it pins"),
        (
            (("a", "popularity", "", 50), ("b", "covisitation", "", 50)),
            {"ends_at": timezone.now() - timedelta(days=1)},
            "The end must be after the start.",
        ),
    ],
)
def test_bad_input_is_refused_with_its_reason(staff_client, arms, extra, message):
    # when staff submit the form
    response = staff_client.post(reverse(ADD), form_data(*arms, **extra))
    # then the form comes back with the reason and nothing is saved
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_second_experiment_on_a_placement_at_the_same_time_is_refused(staff_client, experiment_factory):
    # given an experiment running on home without an end
    experiment_factory(name="Running one", placement="home")
    # when staff add another on home from tomorrow, and one on cart
    refused = staff_client.post(
        reverse(ADD), form_data(("a", "popularity", "", 50), ("b", "covisitation", "", 50))
    )
    accepted = staff_client.post(
        reverse(ADD), form_data(("a", "popularity", "", 50), ("b", "covisitation", "", 50), placement="cart")
    )
    # then the first is refused naming the running experiment, the second saved
    assert (
        refused.status_code == 200 and "Another experiment runs on this placement" in refused.content.decode()
    )
    assert "Running one" in refused.content.decode()
    assert accepted.status_code == 302
    assert sorted(Experiment.objects.values_list("placement", flat=True)) == ["cart", "home"]


def test_the_results_page_shows_each_arms_figures_and_charts(staff_client, experiment_factory, arm_factory):
    # given an experiment with two shoppers in arm A, one shown a list, none in B
    experiment = experiment_factory(name="Home test")
    a = arm_factory(experiment=experiment, name="Alpha", share=50)
    arm_factory(experiment=experiment, name="Beta", share=50, strategy="covisitation")
    for visitor in ("v1", "v2"):
        row = ExperimentAssignment.objects.create(experiment=experiment, arm=a, visitor_id=visitor)
    Impression.objects.create(experiment=experiment, arm=a, assignment=row, visitor_id="v2", item_keys=["S1"])
    # when staff open its results
    response = staff_client.get(reverse("admin:recommendations_experiment_results", args=[experiment.pk]))
    # then the arms' rows, the metrics table and three server-side charts
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="rec-arm"') == 2 and "Alpha (baseline)" in page
    assert page.count('class="rec-metric') == 8
    assert page.count('<svg class="rec-chart"') == 3 and "cdn" not in page.lower()
    assert "always-valid" in page


def test_promoting_the_winner_asks_shows_the_guard_and_is_logged(
    staff_client, staff_user, experiment_factory, arm_factory, version_factory
):
    # given an experiment between the active v1 and a v2 the guard did not promote
    v1 = version_factory(1, status="active")
    v2 = version_factory(2, metrics={"NDCG@10": 0.05}, baseline_metrics={"popularity": {"NDCG@10": 0.1}})
    experiment = experiment_factory()
    arm_factory(experiment=experiment, name="v1", strategy="model", model_version=v1)
    winner = arm_factory(experiment=experiment, name="v2", strategy="model", model_version=v2)
    url = reverse("admin:recommendations_experiment_promote", args=[experiment.pk, winner.pk])
    # when staff open the promotion, then confirm it
    confirm = staff_client.get(url)
    done = staff_client.post(url)
    # then the page warned with the guard's reason, v2 is active, and the admin log has it
    assert confirm.status_code == 200 and "advised against" in confirm.content.decode()
    assert done.status_code == 302
    v2.refresh_from_db()
    assert v2.status == "active" and v2.promoted_by == f"admin:{staff_user.username}"
    entry = LogEntry.objects.get(object_id=str(experiment.pk))
    assert "Promoted arm “v2”" in entry.get_change_message() and entry.user == staff_user
