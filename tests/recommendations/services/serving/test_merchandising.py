"""Merchandising on served lists: each action, dates, placement scoping, stock, the held rules and
their invalidation, every list service, and the rule ids recorded with the impression."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from recommendations.models import Impression
from recommendations.services.serving import (
    bought_together,
    complete_purchase,
    impressions,
    popular_items,
    recommend_for,
    similar_items,
)

pytestmark = pytest.mark.django_db


def popular(placement="popular", limit=5):
    return popular_items(limit=limit, placement=placement).keys


def test_a_pin_puts_an_item_at_its_position_and_the_impression_records_the_rule(catalogue, add_rule):
    # given the list as the model makes it, and a pin of an item it does not hold at position 2
    before = popular(placement="home")
    outsider = next(p.sku for p in catalogue["shoes"] + catalogue["hats"] if p.sku not in before)
    rule = add_rule(action="pin", item_key=outsider, position=2, placement="home")
    # when a list is served and recorded
    result = popular_items(limit=5, placement="home", record=True)
    impressions.flush()
    # then the item is second, the others keep their order, and the impression names the rule
    assert result.keys == [before[0], outsider, *before[1:4]]
    assert result.items[1].reason == "featured"
    assert result.items[1].source == "merchandising"
    assert result.source == "popular"
    assert Impression.objects.get().merchandising_rule_ids == [rule.pk]


def test_a_pinned_item_already_on_the_list_is_moved_not_repeated(catalogue, add_rule):
    before = popular()
    add_rule(action="pin", item_key=before[3], position=1)
    assert popular() == [before[3], *before[:3], before[4]]


def test_a_pin_of_an_item_out_of_stock_since_does_nothing(catalogue, add_rule):
    # given a pin of a shoe that then sold out (the form checks stock only when the pin is saved)
    before = popular()
    outsider = next(p for p in catalogue["shoes"] if p.sku not in before)
    add_rule(action="pin", item_key=outsider.sku, position=1)
    outsider.stock = 0
    outsider.save()
    # when served, then the list is the model's and no rule is recorded
    result = popular_items(limit=5)
    assert result.keys == before
    assert result.merchandising_rule_ids == []


def test_an_excluded_category_never_appears_and_the_list_stays_full(catalogue, add_rule):
    # given "hats" excluded everywhere and a hat pinned on the popular block
    add_rule(action="exclude", category_key="hats")
    add_rule(action="pin", item_key="H1", position=1, placement="popular")
    # when a long list is served
    keys = popular(limit=10)
    # then it holds ten shoes, never a hat (not even the pinned one)
    assert len(keys) == 10
    assert all(key.startswith("S") for key in keys)


def test_an_excluded_item_is_left_out(catalogue, add_rule):
    before = popular(limit=6)
    rule = add_rule(action="exclude", item_key=before[0])
    result = popular_items(limit=5)
    assert result.keys == before[1:6]
    assert result.merchandising_rule_ids == [rule.pk]


def test_boost_and_bury_move_items_by_their_strength(catalogue, add_rule):
    before = popular(limit=8)
    add_rule(action="boost", item_key=before[6], strength=3)  # 7th -> 4th: from below the cut
    add_rule(action="bury", item_key=before[0], strength=2)  # 1st -> 3rd
    assert popular(limit=5) == [before[1], before[2], before[0], before[6], before[3]]


@pytest.mark.parametrize(
    "window",
    [
        {"starts_at": timedelta(hours=1)},  # not started
        {"starts_at": -timedelta(hours=2), "ends_at": -timedelta(hours=1)},  # ended
    ],
)
def test_a_rule_outside_its_window_does_nothing(catalogue, add_rule, window):
    before = popular()
    now = timezone.now()
    add_rule(action="exclude", item_key=before[0], **{name: now + delta for name, delta in window.items()})
    result = popular_items(limit=5)
    assert result.keys == before
    assert result.merchandising_rule_ids == []


def test_a_rule_of_one_placement_leaves_the_others_alone(catalogue, add_rule):
    # given an exclusion on "home" only
    before = popular()
    add_rule(action="exclude", item_key=before[0], placement="home")
    # then "home" lists lose the item, the popular block keeps it
    assert before[0] not in popular(placement="home")
    assert popular() == before


def test_a_rule_of_all_placements_applies_to_every_list_service(catalogue, add_rule, page_request):
    # given S1 excluded from every placement
    rule = add_rule(action="exclude", item_key="S1")
    request = page_request(cart={"S2": 1})
    # when every list service builds a list
    lists = {
        "recommend_for": recommend_for(visitor_id="v1", limit=10),
        "similar_items": similar_items("S0", limit=10),
        "popular_items": popular_items(limit=20),
        "complete_purchase": complete_purchase(limit=10, context={"request": request}),
        "template tag": None,
    }
    html = Template('{% load recommendations %}{% show_recommended placement="home" limit=10 %}').render(
        Context({"request": page_request()})
    )
    # then none shows it, and each that would have records the rule
    for name, result in lists.items():
        if result is not None:
            assert "S1" not in result.keys, name
    assert 'data-item="' in html
    assert 'data-item="S1"' not in html
    assert rule.pk in lists["popular_items"].merchandising_rule_ids
    assert bought_together("S0", limit=10).keys.count("S1") == 0


def test_the_api_serves_a_precomputed_list_merchandised_and_records_the_rules(
    catalogue, add_rule, user, precomputed, client
):
    # given a fresh precomputed list, a pin on the API's list and an exclusion everywhere
    precomputed(user, ["S1", "S2", "S3", "S4", "S5", "S6"])
    pin = add_rule(action="pin", item_key="H4", position=2, placement="default")
    exclusion = add_rule(action="exclude", item_key="S2")
    client.force_login(user)
    # when the shopper asks for their list (twice: the second may be a reused list)
    answers = [client.get("/api/recommendations/", {"limit": 4}) for _ in range(2)]
    impressions.flush()
    # then both hold the pin second and never the excluded item, and both impressions name the rules
    for response in answers:
        assert response.status_code == 200
        assert [entry["item"] for entry in response.json()["items"]] == ["S1", "H4", "S3", "S4"]
    rows = list(Impression.objects.values_list("merchandising_rule_ids", flat=True))
    assert rows == [[pin.pk, exclusion.pk]] * 2


def test_a_reused_list_is_not_served_after_a_rule_changes(catalogue, add_rule, user, precomputed, client):
    # given a shopper whose list was assembled (and kept for reuse) before a rule existed
    precomputed(user, ["S1", "S2", "S3", "S4"])
    client.force_login(user)
    first = client.get("/api/recommendations/", {"limit": 3}).json()
    # when staff exclude the first item
    add_rule(action="exclude", item_key="S1")
    second = client.get("/api/recommendations/", {"limit": 3}).json()
    # then the new answer follows the rule
    assert [entry["item"] for entry in first["items"]] == ["S1", "S2", "S3"]
    assert [entry["item"] for entry in second["items"]] == ["S2", "S3", "S4"]


def test_the_similar_items_endpoint_applies_its_placements_rules(catalogue, add_rule, client):
    # given a pin on the "similar" placement only
    add_rule(action="pin", item_key="H7", position=1, placement="similar")
    # when the similar items of a shoe are asked for, and its "bought together"
    similar = client.get("/api/items/S0/similar/", {"limit": 3}).json()
    together = client.get("/api/items/S0/similar/", {"limit": 3, "kind": "bought_together"}).json()
    # then the pin leads the similar items only
    assert similar["items"][0]["item"] == "H7"
    assert all(entry["item"] != "H7" for entry in together["items"])


def test_a_real_time_list_is_merchandised_after_the_network(active_model, add_rule, user, event_factory):
    # given a shopper whose latest event is newer than any stored list: the network scores them
    from shop.models import Product

    for sku in ("S1", "S2", "S3"):
        event_factory(user=user, item=Product.objects.get(sku=sku))
    unruled = recommend_for(user=user, limit=5, placement="home")
    assert unruled.items and unruled.items[0].source == "personal"
    # when staff exclude the network's first item and pin a hat at the top
    excluded = unruled.keys[0]
    add_rule(action="exclude", item_key=excluded, placement="home")
    pin = add_rule(action="pin", item_key="H9", position=1, placement="home")
    result = recommend_for(user=user, limit=5, placement="home")
    # then the hat leads, the excluded item is gone, and the list is still the network's
    assert result.keys[0] == "H9"
    assert excluded not in result.keys
    assert result.keys[1:] == [key for key in unruled.keys if key not in (excluded, "H9")][:4]
    assert result.source == "personal"
    assert pin.pk in result.merchandising_rule_ids


def test_a_cart_without_complements_gets_the_popular_block_with_its_pin(catalogue, add_rule, page_request):
    # given a cart whose item nobody bought anything with, and a pin on the cart's block
    request = page_request(cart={"S0": 1})
    unruled = complete_purchase(limit=4, context={"request": request}).keys
    pin = add_rule(action="pin", item_key="H5", position=2, placement="cart")
    # when the cart's block is served on a new page
    result = complete_purchase(limit=4, context={"request": page_request(cart={"S0": 1})})
    # then it is the popular block (not the pin alone), with the pin second
    assert result.keys == [unruled[0], "H5", *[key for key in unruled[1:] if key != "H5"]][:4]
    assert result.merchandising_rule_ids == [pin.pk]
