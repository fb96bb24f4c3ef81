"""factory_boy factories shared by the whole suite."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from behavior.models import Event
from recommendations.models import (
    Experiment,
    ExperimentArm,
    MerchandisingRule,
    ModelVersion,
    ShadowRun,
    ShadowScore,
)
from shop.models import Category, Order, OrderItem, Product


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"shopper{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("secret-pass-123")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    is_superuser = True


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("19.99")
    stock = 10
    is_active = True


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    user = factory.SubFactory(UserFactory)
    total = Decimal("0")


class OrderItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderItem

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    unit_price = factory.LazyAttribute(lambda o: o.product.price)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.LazyFunction(uuid.uuid4)
    user = factory.SubFactory(UserFactory)
    item = factory.SubFactory(ProductFactory)
    event_type = "view"
    occurred_at = factory.LazyFunction(timezone.now)


class ExperimentFactory(factory.django.DjangoModelFactory):
    """A running experiment on the home block (started an hour ago, no end)."""

    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"Experiment {n}")
    placement = "home"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


class ExperimentArmFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExperimentArm

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"arm {n}")
    strategy = "popularity"
    share = 50


class MerchandisingRuleFactory(factory.django.DjangoModelFactory):
    """A rule in force on every placement since an hour ago (give the action and the target)."""

    class Meta:
        model = MerchandisingRule

    action = "boost"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registered version without an artefact (loading it is refused)."""

    class Meta:
        model = ModelVersion

    number = factory.Sequence(lambda n: 100 + n)
    artifact_path = factory.Sequence(lambda n: f"recommender/models/missing-{n}")


class ShadowRunFactory(factory.django.DjangoModelFactory):
    """An active shadow run of every placement scoring every request."""

    class Meta:
        model = ShadowRun

    model_version = factory.SubFactory(ModelVersionFactory)
    sample_share = 1.0


class ShadowScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ShadowScore

    run = factory.SubFactory(ShadowRunFactory)
    recommendation_id = factory.LazyFunction(uuid.uuid4)
    served_keys = factory.LazyFunction(lambda: ["A", "B", "C"])
    shadow_keys = factory.LazyFunction(lambda: ["B", "D"])
    overlap_at_10 = 1 / 3
