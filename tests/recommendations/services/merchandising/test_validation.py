"""What staff may save as a merchandising rule, on either item model (``swappable``: the suite runs
these with ``testapp.Book``, string primary key and no category, too)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from behavior.items import get_item_model, item_key
from recommendations.services.merchandising.validation import RuleInput, rule_errors
from tests.recommendations.services.test_training_support import is_swapped, item_factory  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.swappable]


def rule(**fields):
    values = {
        "action": "pin",
        "item_key": "",
        "category_key": "",
        "position": None,
        "starts_at": timezone.now(),
        "ends_at": None,
    }
    return RuleInput(**{**values, **fields})


def test_a_pin_of_an_item_shoppers_can_buy_is_accepted(item_factory):  # noqa: F811
    key = item_key(item_factory())
    assert rule_errors(rule(item_key=key, position=3)) == []


def test_a_pin_of_an_item_shoppers_cannot_buy_is_refused_but_it_may_be_excluded(item_factory):  # noqa: F811
    # given an item taken off sale
    item = item_factory()
    field = "available" if is_swapped() else "is_active"
    get_item_model()._default_manager.filter(pk=item.pk).update(**{field: False})
    key = item_key(item)
    # then pinning it is refused with the reason, excluding it is fine
    assert rule_errors(rule(item_key=key, position=1)) == [
        f"{key} is out of stock or inactive: a pinned item must be one shoppers can buy."
    ]
    assert rule_errors(rule(action="exclude", item_key=key)) == []


def test_every_reason_of_a_rule_is_given_at_once():
    # given a pin naming nothing, without a position, ending before it starts
    now = timezone.now()
    errors = rule_errors(rule(starts_at=now, ends_at=now - timedelta(hours=1)))
    # then each reason is listed
    assert errors == [
        "The end must be after the start.",
        "Name an item or a category.",
        "A pin needs a position.",
    ]


def test_an_unknown_item_or_category_is_refused(item_factory):  # noqa: F811
    item_factory()
    assert rule_errors(rule(action="boost", item_key="no-such-key")) == ["No item has the key no-such-key."]
    assert rule_errors(rule(action="bury", category_key="no-such-category")) == [
        "No item is in the category no-such-category."
    ]
