"""Fixtures of the event-pipeline tests that work with whatever the item model is.

Tests marked ``swappable`` run a second time with ``tests.settings_swapped`` (item model
``testapp.Book``, string primary key), so they must not use the shop's ProductFactory.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.db import models

from behavior.items import get_item_model, item_key_field

# The API tests of events, identity and outages also fetch lists from a trained model.
from tests.recommendations.conftest import _fresh_serving_state, active_model, catalogue  # noqa: F401

_counter = itertools.count(1)


def _required_values(model: type[models.Model], text: str) -> dict:
    """Values for every required field of ``model`` (foreign keys get a fresh related row)."""
    values: dict = {}
    for field in model._meta.concrete_fields:
        if isinstance(field, models.AutoField) or field.has_default() or field.null:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        if isinstance(field, models.ForeignKey):
            related = field.related_model
            values[field.name] = related._default_manager.create(**_required_values(related, f"{text}-rel"))
        elif isinstance(field, models.CharField | models.TextField):
            values[field.name] = text[: field.max_length or None]
        elif isinstance(field, models.DecimalField):
            values[field.name] = Decimal("9.99")
        elif isinstance(field, models.IntegerField | models.FloatField):
            values[field.name] = 1
    return values


@pytest.fixture
def make_item(db):
    """Create an item of the configured item model: ``make_item("K-1")`` (key optional)."""

    def make(key: str | None = None):
        model = get_item_model()
        key = key or f"ITEM-{next(_counter):05d}"
        values = _required_values(model, key)
        values[item_key_field()] = key
        return model._default_manager.create(**values)

    return make


@pytest.fixture
def item(make_item):
    return make_item("ITEM-A")


@pytest.fixture
def other_item(make_item):
    return make_item("ITEM-B")
