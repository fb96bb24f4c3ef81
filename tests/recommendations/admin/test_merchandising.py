"""Merchandising rules in the admin: each refusal with its reason, a valid rule saved with its
author, and the bulk switch that serving sees at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations.models import MerchandisingRule
from recommendations.services.serving import popular_items

pytestmark = pytest.mark.django_db

ADD = "admin:recommendations_merchandisingrule_add"
CHANGELIST = "admin:recommendations_merchandisingrule_changelist"


def form_data(
    *,
    action="pin",
    item_key="",
    category_key="",
    position="",
    strength="1",
    starts_at=None,
    ends_at=None,
    placement="home",
):
    start = starts_at or timezone.now() - timedelta(minutes=5)
    return {
        "placement": placement,
        "action": action,
        "item_key": item_key,
        "category_key": category_key,
        "position": position,
        "strength": strength,
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": ends_at.strftime("%Y-%m-%d") if ends_at else "",
        "ends_at_1": ends_at.strftime("%H:%M:%S") if ends_at else "",
        "active": "on",
        "note": "",
    }


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_a_valid_pin_is_saved_with_its_author(staff_client, staff_user, catalogue):
    response = staff_client.post(reverse(ADD), form_data(item_key="S3", position="2"))
    assert response.status_code == 302
    rule = MerchandisingRule.objects.get()
    assert (rule.action, rule.item_key, rule.position, rule.placement) == ("pin", "S3", 2, "home")
    assert rule.created_by == f"admin:{staff_user.username}"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"item_key": "S3"}, "A pin needs a position."),
        ({"action": "boost"}, "Name an item or a category."),
        (
            {"action": "boost", "item_key": "S3", "category_key": "shoes"},
            "Name an item or a category, not both.",
        ),
        ({"item_key": "NOPE", "position": "1"}, "No item has the key NOPE."),
        ({"category_key": "shoes", "position": "1"}, "Only an item can be pinned; boost a category instead."),
        ({"action": "exclude", "category_key": "socks"}, "No item is in the category socks."),
        ({"action": "bury", "item_key": "S3", "position": "2"}, "Only a pin has a position."),
        (
            {"action": "exclude", "item_key": "S3", "ends_at": timezone.now() - timedelta(hours=1)},
            "The end must be after the start.",
        ),
    ],
)
def test_the_form_refuses_a_rule_with_its_reason(staff_client, catalogue, data, reason):
    response = staff_client.post(reverse(ADD), form_data(**data))
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not MerchandisingRule.objects.exists()


@pytest.mark.parametrize("field", ["stock", "is_active"])
def test_a_pin_of_an_item_shoppers_cannot_buy_is_refused(staff_client, catalogue, field):
    # given a shoe out of stock, or inactive
    shoe = catalogue["shoes"][3]
    setattr(shoe, field, 0 if field == "stock" else False)
    shoe.save()
    # when staff pin it, then the form says why not
    response = staff_client.post(reverse(ADD), form_data(item_key="S3", position="1"))
    assert response.status_code == 200
    assert (
        "S3 is out of stock or inactive: a pinned item must be one shoppers can buy."
        in response.content.decode()
    )
    # while excluding it is fine
    response = staff_client.post(reverse(ADD), form_data(action="exclude", item_key="S3"))
    assert response.status_code == 302


def test_switching_rules_off_in_bulk_is_seen_by_the_next_list(
    staff_client, catalogue, rule_factory, django_capture_on_commit_callbacks
):
    # given an exclusion in force, read by serving
    before = popular_items(limit=5).keys
    rule = rule_factory(action="exclude", item_key=before[0])
    from recommendations.services.merchandising.rules import forget_rules

    forget_rules()
    assert before[0] not in popular_items(limit=5).keys
    # when staff switch it off from the list
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse(CHANGELIST), {"action": "switch_off", "_selected_action": [rule.pk]}
        )
    # then it is off and the next list is the model's again
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.active is False
    assert popular_items(limit=5).keys == before


def test_the_list_page_names_targets_and_placements(staff_client, catalogue, rule_factory):
    rule_factory(action="boost", category_key="hats", strength=2)
    page = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert "category hats" in page
    assert "all placements" in page
