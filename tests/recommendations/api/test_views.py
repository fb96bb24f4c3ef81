"""The recommendations HTTP API: validation, limits, 404s, cache headers, isolation."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from recommendations.models import NotInterested, PrecomputedList


@pytest.fixture
def client():
    return APIClient()


@pytest.mark.django_db
def test_anonymous_list_has_contract_fields_and_private_headers(client, catalogue):
    # when
    response = client.get("/api/recommendations/", {"limit": 3, "placement": "home"})
    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"recommendation_id", "model_version", "source", "placement", "items"}
    assert [item["item"] for item in body["items"]] == ["H9", "H8", "H7"]
    assert set(body["items"][0]) == {"item", "name", "url", "score", "reason", "position", "source"}
    assert body["items"][0]["reason"] == "new in Hats"
    assert response["Cache-Control"] == "private, no-store"
    assert "Cookie" in response["Vary"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"placement": "bad place!"}, "placement"),
        ({"exclude": ",".join(f"k{i}" for i in range(101))}, "exclude"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(client, catalogue, params, field):
    # when
    response = client.get("/api/recommendations/", params)
    # then
    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.django_db
def test_limit_is_clamped_to_max_limit(client, category_factory, product_factory):
    # given 120 items
    category = category_factory(name="Bulk", slug="bulk")
    for i in range(120):
        product_factory(sku=f"B{i:03d}", category=category)
    # when
    response = client.get("/api/recommendations/", {"limit": 1000})
    # then
    assert len(response.json()["items"]) == 100


@pytest.mark.django_db
def test_exclude_parameter(client, catalogue):
    response = client.get("/api/recommendations/", {"limit": 2, "exclude": "H9, H8"})
    assert [item["item"] for item in response.json()["items"]] == ["H7", "H6"]


@pytest.mark.django_db
def test_similar_unknown_item_is_404_and_known_is_public(client, catalogue):
    # given a shop without any behaviour yet
    # when
    missing = client.get("/api/items/NOPE/similar/")
    found = client.get("/api/items/S1/similar/", {"limit": 2})
    together = client.get("/api/items/S1/similar/", {"limit": 2, "kind": "bought_together"})
    bad_kind = client.get("/api/items/S1/similar/", {"kind": "other"})
    # then similar items fall back to the newest of its category, said as such
    assert missing.status_code == 404
    assert found.status_code == 200
    assert [(item["item"], item["reason"]) for item in found.json()["items"]] == [
        ("S9", "new in Shoes"),
        ("S8", "new in Shoes"),
    ]
    assert found["Cache-Control"] == "public, max-age=300"
    # and nothing was ever bought with it: no other shoe is passed off as bought together
    assert together.status_code == 200
    assert together.json()["items"] == []
    assert bad_kind.status_code == 400
    assert list(bad_kind.json()) == ["kind"]


@pytest.mark.django_db
def test_similar_and_bought_together_say_what_relates_the_items_and_nothing_of_the_client(
    client, catalogue, user_factory, event_factory
):
    # given three shoppers who view shoes 0, 1 and 2 in a row, then buy shoe 0 with hat 3
    from datetime import timedelta

    from recommendations.services.serving.popularity import refresh_popularity
    from recommendations.services.serving.relations import refresh_item_relations

    products = {p.sku: p for items in catalogue.values() for p in items}
    start = timezone.now() - timedelta(days=1)
    for _ in range(3):
        shopper = user_factory()
        steps = [("S0", "view"), ("S1", "view"), ("S2", "view"), ("S0", "purchase"), ("H3", "purchase")]
        for minute, (key, event_type) in enumerate(steps):
            event_factory(
                user=shopper,
                item=products[key],
                event_type=event_type,
                occurred_at=start + timedelta(minutes=minute),
            )
    refresh_item_relations()
    refresh_popularity()
    # when a client that never viewed anything asks for both lists of shoe 0
    similar = client.get("/api/items/S0/similar/", {"limit": 3}).json()["items"]
    together = client.get("/api/items/S0/similar/", {"limit": 3, "kind": "bought_together"}).json()["items"]
    # then the similar items are the co-viewed shoes (and the hat), "similar to Shoe 0": never
    # "because you viewed", which this client did not
    assert {item["item"] for item in similar} == {"S1", "S2", "H3"}
    assert {item["reason"] for item in similar} == {"similar to Shoe 0"}
    # and the hat bought with it is "bought together with Shoe 0"; the shoes only viewed with it are not
    assert [(item["item"], item["reason"], item["source"]) for item in together] == [
        ("H3", "bought together with Shoe 0", "complement")
    ]


@pytest.mark.django_db
def test_popular_per_category(client, catalogue):
    response = client.get("/api/items/popular/", {"limit": 3, "category": "shoes"})
    assert response.status_code == 200
    assert [item["item"] for item in response.json()["items"]] == ["S9", "S8", "S7"]
    assert response["Cache-Control"] == "public, max-age=300"


@pytest.mark.django_db
def test_second_user_never_sees_the_first_users_list(client, catalogue, user, other_user):
    # given a precomputed list for the first user only
    PrecomputedList.objects.create(
        user=user,
        item_keys=["S5", "S6"],
        scores=[0.9, 0.8],
        reasons=["because you viewed Shoe 1"] * 2,
        model_version=7,
        computed_at=timezone.now(),
    )
    # when each user asks (a guessed user parameter is ignored)
    client.force_authenticate(user)
    first = client.get("/api/recommendations/", {"limit": 2}).json()
    client.force_authenticate(other_user)
    second = client.get("/api/recommendations/", {"limit": 2, "user": user.pk, "user_id": user.pk}).json()
    # then
    assert [item["item"] for item in first["items"]] == ["S5", "S6"]
    assert first["source"] == "personal"
    assert first["model_version"] == 7
    assert [item["item"] for item in second["items"]] == ["H9", "H8"]
    assert second["model_version"] is None


@pytest.mark.django_db
def test_not_interested_removes_item_for_that_user_only(client, catalogue, user, other_user):
    # given
    client.force_authenticate(user)
    # when
    created = client.post("/api/recommendations/not-interested/", {"item": "H9"}, format="json")
    again = client.post("/api/recommendations/not-interested/", {"item": "H9"}, format="json")
    unknown = client.post("/api/recommendations/not-interested/", {"item": "NOPE"}, format="json")
    mine = client.get("/api/recommendations/", {"limit": 1}).json()
    client.force_authenticate(other_user)
    theirs = client.get("/api/recommendations/", {"limit": 1}).json()
    # then
    assert created.status_code == 201
    assert again.status_code == 200
    assert unknown.status_code == 400
    assert list(unknown.json()) == ["item"]
    assert NotInterested.objects.filter(user=user, item_key="H9").count() == 1
    assert mine["items"][0]["item"] == "H8"
    assert theirs["items"][0]["item"] == "H9"


@pytest.mark.django_db
def test_deleted_user_gets_fallback_not_500(client, catalogue, user):
    # given a session for a user that is then deleted
    client.force_authenticate(user)
    user.delete()
    # when
    response = client.get("/api/recommendations/", {"limit": 2})
    # then
    assert response.status_code == 200
    assert len(response.json()["items"]) == 2


@pytest.mark.django_db
def test_endpoints_are_in_the_openapi_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = response.json()["paths"] if response["Content-Type"].startswith("application/json") else {}
    text = response.content.decode()
    for path in (
        "/api/recommendations/",
        "/api/items/{key}/similar/",
        "/api/items/popular/",
        "/api/recommendations/not-interested/",
    ):
        assert path in paths or path in text


@pytest.mark.django_db
def test_precomputed_list_is_reused_with_a_new_id_until_a_mark_changes_it(client, catalogue, user):
    # given a fresh precomputed list
    from recommendations.models import Impression
    from recommendations.services.serving import impressions

    PrecomputedList.objects.create(
        user=user,
        item_keys=["S5", "S6", "S7"],
        scores=[0.9, 0.8, 0.7],
        reasons=["because you viewed Shoe 1"] * 3,
        model_version=3,
        computed_at=timezone.now(),
    )
    client.force_authenticate(user)
    # when the same list is asked for twice, then an item is marked "not interested"
    first = client.get("/api/recommendations/", {"limit": 2}).json()
    second = client.get("/api/recommendations/", {"limit": 2}).json()
    client.post("/api/recommendations/not-interested/", {"item": "S5"}, format="json")
    third = client.get("/api/recommendations/", {"limit": 2}).json()
    impressions.flush()
    # then the reused list has its own id (and tracked links), the mark shows at once
    assert [item["item"] for item in first["items"]] == ["S5", "S6"]
    assert second["items"] == first["items"]
    assert second["recommendation_id"] != first["recommendation_id"]
    assert (second["source"], second["model_version"]) == ("personal", 3)
    assert [item["item"] for item in third["items"]] == ["S6", "S7"]
    rows = {str(row.recommendation_id): row.item_keys for row in Impression.objects.filter(user=user)}
    assert rows == {
        first["recommendation_id"]: ["S5", "S6"],
        second["recommendation_id"]: ["S5", "S6"],
        third["recommendation_id"]: ["S6", "S7"],
    }


@pytest.mark.django_db
def test_a_signed_in_shopper_keeps_one_arm_and_each_listed_impression_carries_it(
    client, catalogue, user_factory, experiment_factory, arm_factory
):
    # given an experiment on the API's "home" lists and two shoppers
    from recommendations.models import ExperimentAssignment, Impression
    from recommendations.services.experiments import assignment
    from recommendations.services.serving import impressions

    experiment = experiment_factory(placement="home")
    arm_factory(experiment=experiment, name="popular", share=50)
    arm_factory(experiment=experiment, name="co-visitation", strategy="covisitation", share=50)
    shoppers = [user_factory(), user_factory()]
    ids = {}
    # when each asks three times (the kept assignments forgotten in between: another process)
    for shopper in shoppers:
        client.force_authenticate(shopper)
        ids[shopper.pk] = [
            client.get("/api/recommendations/", {"limit": 3, "placement": "home"}).json()["recommendation_id"]
            for _ in range(3)
            if assignment.forget_kept() is None
        ]
    impressions.flush()
    # then every list of a shopper carries the experiment and that shopper's one stored arm
    stored = dict(ExperimentAssignment.objects.values_list("user_id", "arm_id"))
    for shopper in shoppers:
        rows = Impression.objects.filter(recommendation_id__in=ids[shopper.pk])
        assert set(rows.values_list("experiment_id", "arm_id", "user_id")) == {
            (experiment.pk, stored[shopper.pk], shopper.pk)
        }
        assert rows.count() == 3
