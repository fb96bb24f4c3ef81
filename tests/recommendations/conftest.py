"""Fixtures of the recommendations tests: a catalogue in two categories, a tiny trained model,
the default cache on a real Redis and stored lists."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from recommendations.models import PrecomputedList
from recommendations.services.serving import impressions, popularity
from tests.conftest import require_service
from tests.integration.harness import reachable


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    popularity.clear_local()
    yield
    impressions.flush(force=True)


@pytest.fixture
def catalogue(category_factory, product_factory):
    """Ten products in "Shoes" (S*) and ten in "Hats" (H*), all active and in stock."""
    shoes = category_factory(name="Shoes", slug="shoes")
    hats = category_factory(name="Hats", slug="hats")
    return {
        "shoes": [product_factory(sku=f"S{i}", name=f"Shoe {i}", category=shoes) for i in range(10)],
        "hats": [product_factory(sku=f"H{i}", name=f"Hat {i}", category=hats) for i in range(10)],
    }


@pytest.fixture
def page_request(db):
    """A request as the template tags see it (anonymous visitor, empty cart)."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.cache import SessionStore

    def make(user=None, visitor_id="visitor-0001", cart=None):
        request = RequestFactory().get("/")
        request.user = user or AnonymousUser()
        request.visitor_id = visitor_id
        request.session = SessionStore()
        request.session["cart"] = cart or {}
        return request

    return make


def synthetic_log():
    """Shoppers who browse within one category: shoes follow shoes, hats follow hats."""
    import numpy as np

    from recommendations.core.dataset import EventLog

    rng = np.random.default_rng(0)
    users, items, types, stamps = [], [], [], []
    base = timezone.now().timestamp() - 86400 * 5
    for user in range(120):
        prefix = "S" if user % 2 == 0 else "H"
        for step in range(8):
            users.append(f"u{user}")
            items.append(f"{prefix}{int(rng.integers(0, 10))}")
            types.append("view" if step % 3 else "add_to_cart")
            stamps.append(base + user * 100 + step)
    return EventLog(
        users=np.array(users, dtype=object),
        items=np.array(items, dtype=object),
        event_types=np.array(types, dtype=object),
        timestamps=np.array(stamps, dtype=float),
    )


@pytest.fixture
def active_model(db, catalogue):
    """A tiny behaviour network trained on ``synthetic_log`` and registered as the active version."""
    try:
        from recommendations.core.config import NetworkConfig
        from recommendations.core.recommender import BehaviorRecommender
    except ImportError as exc:  # the core library is written in parallel
        pytest.skip(f"recommendations.core.recommender is not available yet: {exc}")
    from recommendations.models import ModelVersion
    from recommendations.services import artifact_store, registry

    config = NetworkConfig(
        embedding_dim=16,
        epochs=3,
        batch_size=64,
        device="cpu",
        threads=1,
        min_item_users=1,
        min_user_events=1,
    )
    recommender = BehaviorRecommender(config).fit(synthetic_log())
    with tempfile.TemporaryDirectory() as folder:
        recommender.save(folder)
        stored = artifact_store.store_artifact(folder, number=1)
    version = ModelVersion.objects.create(
        number=1, artifact_path=stored.path, artifact_files=stored.files, sha256=stored.sha256
    )
    registry.activate_version(version, by="tests")
    registry.clear_model_cache()
    yield registry.get_active_model()
    registry.clear_model_cache()


@pytest.fixture
def users_scored_alone(settings):
    """Profile rebuilds: the network scores each user alone, so chunks (whole groups of users
    scored together) may have any size in a test."""
    settings.RECOMMENDER = {**settings.RECOMMENDER, "PROFILE_MODEL_BATCH": 1}


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


# Fixtures of the API and fast-path tests: the default cache on a real Redis, stored lists.
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/11")


@pytest.fixture
def redis_cache(settings):
    """The default cache (and so the sessions) on a real Redis, under a prefix of this test's own."""
    import redis

    require_service("Redis", reachable("127.0.0.1", 6379))
    prefix = f"test-fastpath-{uuid.uuid4().hex[:10]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield prefix
    impressions.flush()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def precomputed(db):
    def make(user, keys, *, version=3):
        return PrecomputedList.objects.update_or_create(
            user=user,
            defaults={
                "item_keys": keys,
                "scores": [round(1 - i / 100, 6) for i in range(len(keys))],
                "reasons": ["because you viewed Shoe 1"] * len(keys),
                "model_version": version,
                "computed_at": timezone.now(),
            },
        )[0]

    return make


@pytest.fixture
def add_rule(rule_factory):
    """A merchandising rule saved as staff save one: the rules held by this process are forgotten
    after its commit (here at once: a test's transaction never commits)."""
    from recommendations.services.merchandising.rules import forget_rules

    def make(**fields):
        rule = rule_factory(**fields)
        forget_rules()
        return rule

    return make
