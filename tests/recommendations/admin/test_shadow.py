"""Shadow runs in the admin: a share outside [0, 1] refused, a run saved, and its results on the
model version's page next to the offline metrics."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from recommendations.models import Impression, ShadowRun

pytestmark = pytest.mark.django_db

ADD = "admin:recommendations_shadowrun_add"


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.mark.parametrize("share", ["1.5", "-0.1"])
def test_a_share_outside_zero_to_one_is_refused_with_the_reason(staff_client, model_version_factory, share):
    version = model_version_factory()
    response = staff_client.post(
        reverse(ADD), {"model_version": version.pk, "placement": "", "sample_share": share, "is_active": "on"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["sample_share"]
    assert any("1.0" in error or "0.0" in error for error in errors)
    assert not ShadowRun.objects.exists()


def test_a_placement_with_spaces_is_refused(staff_client, model_version_factory):
    version = model_version_factory()
    response = staff_client.post(
        reverse(ADD),
        {"model_version": version.pk, "placement": "home page", "sample_share": "0.1", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "placement" in response.context["adminform"].form.errors
    assert not ShadowRun.objects.exists()


def test_a_run_is_saved_and_serving_sees_it_at_once(
    staff_client, model_version_factory, django_capture_on_commit_callbacks
):
    from recommendations.services.shadow.sampling import runs_for

    version = model_version_factory()
    assert runs_for("home") == []  # read and kept by this process
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse(ADD),
            {"model_version": version.pk, "placement": "home", "sample_share": "0.1", "is_active": "on"},
        )
    assert response.status_code == 302
    run = ShadowRun.objects.get()
    assert (run.model_version_id, run.placement, run.sample_share) == (version.pk, "home", 0.1)
    assert [plan.share for plan in runs_for("home")] == [0.1]


def test_the_version_page_shows_shadow_results_beside_its_metrics(
    staff_client, user, product_factory, event_factory, shadow_run_factory, shadow_score_factory
):
    # given a run of 3 scored requests (overlaps 1, 0.5, 0) and one click, on an item the shadow
    # ranked 2nd and the served list 1st, with 2 failures
    run = shadow_run_factory(failures=2, sample_share=0.25, placement="home")
    scores = [
        shadow_score_factory(
            run=run, user=user, served_keys=["A", "B"], shadow_keys=keys, overlap_at_10=overlap
        )
        for keys, overlap in ((["B", "A"], 1.0), (["C", "A"], 0.5), (["C", "D"], 0.0))
    ]
    Impression.objects.create(recommendation_id=scores[0].recommendation_id, user=user, item_keys=["A", "B"])
    event_factory(
        user=user,
        item=product_factory(sku="A"),
        event_type="click",
        recommendation_id=scores[0].recommendation_id,
    )
    # when staff open the version's page
    url = reverse("admin:recommendations_modelversion_change", args=[run.model_version_id])
    html = staff_client.get(url).content.decode()
    # then the figures stand next to the holdout metrics
    assert "Metrics on the run" in html
    assert "Shadow scoring on live requests" in html
    assert "home, 25 % of requests, active" in html
    for label, value in (
        ("requests scored", "3"),
        ("requests the candidate failed to score", "2"),
        ("mean overlap at 10 with the served list", "0.500"),
        ("clicked item in the served list", "1"),
        ("clicked item in the shadow list", "1"),
        ("mean rank of the clicked item in the served list", "1.00"),
        ("mean rank of the clicked item in the shadow list", "2.00"),
    ):
        assert f"<tr><th>{label}</th><td>{value}</td></tr>" in html


def test_a_version_never_shadowed_says_so(staff_client, model_version_factory):
    version = model_version_factory()
    html = staff_client.get(reverse("admin:recommendations_modelversion_change", args=[version.pk])).content
    assert b"Not shadowed on live requests yet" in html


def test_staff_without_the_permission_cannot_add_a_run(client, user_factory, model_version_factory):
    clerk = user_factory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_shadowrun"))
    client.force_login(clerk)
    version = model_version_factory()
    response = client.post(
        reverse(ADD), {"model_version": version.pk, "sample_share": "0.1", "is_active": "on"}
    )
    assert response.status_code == 403
    assert not ShadowRun.objects.exists()
