"""Fixtures of the demo shop's tests."""

from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture
def phones(category_factory):
    return category_factory(name="Phones", slug="phones")


@pytest.fixture
def phone(product_factory, phones):
    return product_factory(
        sku="PHN-0001",
        name="Nova Pro 128 GB",
        category=phones,
        price=Decimal("499.00"),
        stock=5,
        description="A smartphone with a bright OLED display.",
    )


@pytest.fixture
def case(product_factory, phones):
    return product_factory(
        sku="PAC-0001", name="Nova Clear Case", category=phones, price=Decimal("19.99"), stock=50
    )
