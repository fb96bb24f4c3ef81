"""Outages: storing events never depends on Redis; an unreachable database answers 503, never 500.

Real failures, no stand-ins: "Redis down" is the cache pointed at a port where nothing
listens (every command is refused); "Postgres down" is the test's own connection pointed
at such a port and closed, so the next query fails to connect exactly as with a stopped
server. Both come back by restoring the address.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from rest_framework.throttling import ScopedRateThrottle

from behavior import throttling, tracking
from behavior.models import Event
from behavior.outages import reset_warnings
from behavior.services import ingest as services
from recommendations.models import ErasedSubject
from recommendations.services.privacy import forget_user
from tests.integration.harness import free_port

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


@pytest.fixture
def redis_down(settings):
    """The default cache (throttles, the erasure flag, sessions) on a Redis that refuses connections."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    yield


@pytest.fixture
def database_down():
    """A context manager: inside it the default database is unreachable (connection refused)."""
    import contextlib

    @contextlib.contextmanager
    def down():
        saved = connection.settings_dict["PORT"], connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", free_port()
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict["PORT"], connection.settings_dict["HOST"] = saved

    return down


def _post(client: Client, events: list[dict]):
    return client.post("/api/events/", json.dumps({"events": events}), content_type="application/json")


# --- Redis down ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_are_stored_and_throttled_per_process_while_redis_is_down(
    redis_down, catalogue, monkeypatch, caplog
):
    # given: a rate of 3 per minute, and no Redis
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": "3/min"})
    client = Client(HTTP_USER_AGENT=BROWSER)
    reset_warnings()
    before = throttling.LOCAL_FALLBACKS
    # when
    with caplog.at_level(logging.WARNING, logger="behavior.throttling"):
        codes = [_post(client, [{"event_type": "view", "item": "S1"}]).status_code for _ in range(4)]
    # then: stored, counted in this process, and said once
    assert codes == [202, 202, 202, 429]
    assert Event.objects.count() == 3
    assert throttling.LOCAL_FALLBACKS - before == 4
    warnings = [r.message for r in caplog.records if "Throttle cache unavailable" in r.message]
    assert len(warnings) == 1


@pytest.mark.django_db
def test_product_page_views_are_recorded_while_redis_is_down(redis_down, catalogue):
    # when
    response = Client(HTTP_USER_AGENT=BROWSER).get("/p/S3/")
    # then
    assert response.status_code == 200
    assert list(Event.objects.values_list("event_type", "item__sku")) == [("view", "S3")]


@pytest.mark.django_db
def test_the_erasure_check_asks_the_database_while_redis_is_down(catalogue, user, settings):
    # given: an erased shopper, erased while Redis was up
    forget_user(user, requested_by="tests")
    assert ErasedSubject.objects.exists()
    # when: Redis goes away (the "something was erased" flag with it) and their event arrives
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    result = services.ingest_events([{"event_type": "view", "item": "S1"}], user=user)
    other = services.ingest_events([{"event_type": "view", "item": "S1"}], visitor_id="someone-else")
    # then: never guessed as "not erased"
    assert (result.accepted, other.accepted) == (0, 1)
    assert Event.objects.filter(user=user).count() == 0


# --- Postgres down ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_events_answer_503_with_retry_after_while_the_database_is_down_then_store_once(
    catalogue, database_down
):
    # given
    client = Client(HTTP_USER_AGENT=BROWSER)
    batch = [{"event_id": str(uuid.uuid4()), "event_type": "view", "item": "S1"} for _ in range(25)]
    # when
    with database_down():
        down = _post(client, batch)
    again = _post(client, batch)  # the beacon's retry: same ids and times
    twice = _post(client, batch)
    # then
    assert down.status_code == 503
    assert down["Content-Type"] == "application/json"
    assert down["Retry-After"] == "5"
    assert down.json() == {
        "detail": "The database is unavailable; nothing was stored. Retry later.",
        "retry_after": 5,
    }
    assert (again.status_code, again.json()["accepted"]) == (202, 25)
    assert (twice.status_code, twice.json()["duplicates"]) == (202, 25)
    assert Event.objects.count() == 25


@pytest.mark.django_db(transaction=True)
def test_recommendations_fall_back_to_the_last_popular_list_while_the_database_is_down(
    catalogue, database_down
):
    # given: the process served a list while the database was up
    client = Client(HTTP_USER_AGENT=BROWSER)
    popular = client.get("/api/items/popular/", {"limit": 4}).json()
    # when
    with database_down():
        mine = client.get("/api/recommendations/", {"limit": 4, "placement": "home"})
        similar = client.get("/api/items/S1/similar/", {"limit": 3})
        unknown_category = client.get("/api/items/popular/", {"category": "never-asked"})
    # then
    assert mine.status_code == 200
    body = mine.json()
    assert (body["source"], body["placement"], body["model_version"]) == ("popular", "home", None)
    assert [i["item"] for i in body["items"]] == [i["item"] for i in popular["items"]]
    assert body["recommendation_id"] != popular["recommendation_id"]
    assert mine["Cache-Control"] == "private, no-store"
    assert [i["item"] for i in similar.json()["items"]] == [i["item"] for i in popular["items"]][:3]
    assert unknown_category.status_code == 503
    assert unknown_category.json()["retry_after"] == 5


@pytest.mark.django_db(transaction=True)
def test_recommendations_answer_503_without_a_list_in_memory(catalogue, database_down):
    # when: a process that never reached the database
    with database_down():
        response = Client(HTTP_USER_AGENT=BROWSER).get("/api/recommendations/")
    # then
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


@pytest.mark.django_db(transaction=True)
def test_an_event_a_view_records_while_the_database_is_down_is_counted_as_lost(
    catalogue, database_down, caplog
):
    # given
    request = RequestFactory().get("/p/S1/", HTTP_USER_AGENT=BROWSER)
    request.user, request.visitor_id, request.may_track = AnonymousUser(), "v" * 32, True
    before = tracking.LOST_EVENTS
    reset_warnings()
    # when
    with database_down(), caplog.at_level(logging.WARNING, logger="behavior.tracking"):
        stored = tracking.record_event(request, "view", catalogue["shoes"][1])
    # then
    assert stored is None
    lost = tracking.LOST_EVENTS
    assert lost == before + 1
    assert any("lost: the database is unavailable" in r.message for r in caplog.records)
