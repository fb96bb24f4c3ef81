"""Every object endpoint, asked by a second user with guessed ids, never returns another user's data."""

from __future__ import annotations

import re

import pytest
from django.urls import get_resolver

from recommendations.models import Impression, PrecomputedList, UserProfile
from tests.fastpath_modes import fast_path_mode  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.usefixtures("fast_path_mode")]

# Strings only the victim's own data contains.
SECRETS = ("victim-anna", "anna@victim.example", "vid-victim-0001", "victim-only-tag")


def _object_routes() -> list[str]:
    """Every non-admin URL pattern with at least one parameter, e.g. ``api/profiles/<str:username>/``."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return sorted({p for p in walk(get_resolver().url_patterns) if "<" in p and not p.startswith("admin")})


def _fill(route: str, guess: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?\w+>", guess, route).lstrip("^").rstrip("$")


@pytest.fixture
def victim(user_factory, event_factory, order_factory, shop_items):
    anna = user_factory(username="victim-anna", email="anna@victim.example")
    for item in shop_items[:4]:
        event_factory(user=anna, item=item, visitor_id="vid-victim-0001")
    UserProfile.objects.create(
        user=anna,
        propensity=0.9,
        tags=[{"label": "victim-only-tag", "weight": 1, "description": "", "reasons": []}],
    )
    PrecomputedList.objects.create(user=anna, item_keys=["S1"], scores=[1.0], reasons=["victim-only-tag"])
    Impression.objects.create(user=anna, visitor_id="vid-victim-0001", item_keys=["S1"], placement="home")
    order = order_factory(user=anna)
    return anna, order


def test_second_user_never_gets_the_first_users_data(client, victim, user_factory):
    # given: a logged-in second user guessing ids of every kind on every object route
    anna, order = victim
    mallory = user_factory(username="mallory")
    client.force_login(mallory)
    guesses = [anna.username, str(anna.pk), str(order.pk), "1", "2", "3", "me", "S1", "vid-victim-0001"]
    routes = _object_routes()
    assert "api/profiles/<str:username>/" in routes and "orders/<int:pk>/" in routes

    # when
    leaks, statuses = [], {}
    for route in routes:
        for guess in guesses:
            url = _fill(route, guess)
            response = client.get(url, HTTP_USER_AGENT="Mozilla/5.0")
            statuses[url] = response.status_code
            body = b"".join(response.streaming_content) if response.streaming else response.content
            text = body.decode(errors="replace")
            # an error message echoing the guessed id back is not a leak
            leaks += [f"{url} -> {secret}" for secret in SECRETS if secret in text and secret not in url]
    for url in ("/api/recommendations/", "/api/profiles/me/", "/api/items/popular/"):
        text = client.get(url, HTTP_USER_AGENT="Mozilla/5.0").content.decode()
        leaks += [f"{url} -> {secret}" for secret in SECRETS if secret in text]

    # then
    assert leaks == []
    assert statuses[f"/api/profiles/{anna.username}/"] in (403, 404)
    assert statuses[f"/api/privacy/users/{anna.username}/export/"] == 403
    assert statuses[f"/orders/{order.pk}/"] in (302, 403, 404)
    assert all(status < 500 for status in statuses.values()), statuses
