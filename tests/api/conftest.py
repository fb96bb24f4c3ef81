"""Fixtures of the recommendations API tests (the serving catalogue, a real Redis, precomputed lists)."""

import os
import uuid

import pytest
from django.utils import timezone

from recommendations.models import PrecomputedList
from recommendations.services.serving import impressions
from tests.conftest import require_service
from tests.integration.harness import reachable
from tests.recommendations.conftest import _fresh_serving_state, active_model, catalogue  # noqa: F401

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
