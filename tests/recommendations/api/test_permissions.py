"""Throttles on every plugin endpoint, keyed on a trusted client address; staff endpoints by permission."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import URLPattern, get_resolver
from rest_framework.throttling import ScopedRateThrottle

from behavior.client_address import client_address
from behavior.throttling import ResilientScopedRateThrottle
from recommendations.models import UserProfile
from tests.fastpath_modes import fast_path_mode  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_path_mode")

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


def _address(settings, count: int, forwarded: str | None, remote: str = "10.0.0.9") -> str:
    settings.RECOMMENDER = {**settings.RECOMMENDER, "TRUSTED_PROXY_COUNT": count}
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **extra))


def test_client_address_trusts_only_the_configured_proxies(settings):
    # no proxy (the default): X-Forwarded-For is the client's own writing
    assert _address(settings, 0, "1.2.3.4") == "10.0.0.9"
    # one proxy: the address it appended (rightmost); the client's own entries are ignored
    assert _address(settings, 1, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    # two proxies: the second from the right (what the outer proxy saw)
    assert _address(settings, 2, "6.6.6.6, 203.0.113.7, 10.1.1.1") == "203.0.113.7"
    assert _address(settings, 2, " 2001:db8::1 ,10.1.1.1") == "2001:db8::1"
    # fewer entries than proxies, no header, or not an address: REMOTE_ADDR
    assert _address(settings, 2, "203.0.113.7") == "10.0.0.9"
    assert _address(settings, 1, None) == "10.0.0.9"
    assert _address(settings, 1, "6.6.6.6, not-an-address") == "10.0.0.9"


def _post_event(client: Client, product, forwarded: str) -> int:
    body = json.dumps({"event_type": "view", "item": product.sku})
    return client.post(
        "/api/events/", body, content_type="application/json", HTTP_X_FORWARDED_FOR=forwarded
    ).status_code


@pytest.mark.django_db
def test_a_new_forwarded_header_per_request_does_not_escape_the_throttle(product, monkeypatch, settings):
    # given: 2 events requests a minute, no proxy configured
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": "2/min"})
    client = Client(HTTP_USER_AGENT=BROWSER)
    # when: each request names another address in X-Forwarded-For
    codes = [_post_event(client, product, f"198.51.100.{i}") for i in range(3)]
    # then
    assert codes == [202, 202, 429]


@pytest.mark.django_db
def test_behind_one_trusted_proxy_each_client_address_has_its_own_count(product, monkeypatch, settings):
    # given
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": "2/min"})
    settings.RECOMMENDER = {**settings.RECOMMENDER, "TRUSTED_PROXY_COUNT": 1}
    client = Client(HTTP_USER_AGENT=BROWSER)
    # when: two clients behind the proxy, one of them forging a left-hand entry each time
    first = [_post_event(client, product, f"6.6.6.{i}, 203.0.113.1") for i in range(3)]
    second = [_post_event(client, product, "203.0.113.2") for _ in range(2)]
    # then
    assert first == [202, 202, 429]
    assert second == [202, 202]


def _plugin_views() -> list[tuple[str, type]]:
    """Every (route, view class) of the plugin's two API URLconfs."""
    found = []
    for module in ("behavior.api.urls", "recommendations.api.urls"):
        for pattern in get_resolver(module).url_patterns:
            assert isinstance(pattern, URLPattern)
            found.append((str(pattern.pattern), pattern.callback.view_class))
    return found


def test_every_plugin_endpoint_has_a_throttle_with_a_default_rate(settings):
    from behavior.conf import behavior_settings

    views = _plugin_views()
    assert len(views) >= 8
    for route, view in views:
        throttles = [t for t in view.throttle_classes if issubclass(t, ResilientScopedRateThrottle)]
        assert throttles, f"{route} has no plugin throttle"
        assert behavior_settings.THROTTLE_RATES.get(view.throttle_scope), f"{route}: no default rate"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/api/events/", {"event_type": "view", "item": "P1"}),
        ("get", "/api/recommendations/", None),
        ("post", "/api/recommendations/not-interested/", {"item": "P1"}),
        ("get", "/api/items/popular/", None),
        ("get", "/api/items/P1/similar/", None),
        ("get", "/api/profiles/me/", None),
        ("get", "/api/profiles/someone/", None),
        ("get", "/api/privacy/users/someone/export/", None),
    ],
)
def test_plugin_defaults_throttle_each_endpoint_of_a_project_without_rates(
    method, url, body, product_factory, staff_user, monkeypatch, settings
):
    # given: the project sets no rate at all; the plugin's defaults are 2 a minute
    product_factory(sku="P1")
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {})
    scopes = ("events", "recommendations", "profiles", "privacy")
    settings.RECOMMENDER = {**settings.RECOMMENDER, "THROTTLE_RATES": dict.fromkeys(scopes, "2/min")}
    client = Client(HTTP_USER_AGENT=BROWSER)
    client.force_login(staff_user)
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body is not None else {}
    # when
    codes = [getattr(client, method)(url, **kwargs).status_code for _ in range(3)]
    # then: two answers (whatever they are), then 429
    assert 429 not in codes[:2] and 500 not in codes
    assert codes[2] == 429


@pytest.mark.django_db
def test_login_attempts_are_throttled_per_address_before_any_password_check(user, monkeypatch):
    # given: 3 attempts a minute
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    client = Client()
    # when: three wrong passwords, then the right one
    wrong = [
        client.post("/accounts/login/", {"username": user.username, "password": f"guess-{i}"}).status_code
        for i in range(3)
    ]
    right = client.post("/accounts/login/", {"username": user.username, "password": "secret-pass-123"})
    # then: the fourth attempt is refused, even with the right password; the form page still loads
    assert wrong == [200, 200, 200]
    assert right.status_code == 429
    assert int(right["Retry-After"]) >= 1
    assert "Too many login attempts" in right.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/accounts/login/").status_code == 200


def _grant(user, codename: str) -> None:
    user.user_permissions.add(
        Permission.objects.get(codename=codename, content_type__app_label="recommendations")
    )


@pytest.mark.django_db
def test_staff_without_permissions_reads_no_profile_and_exports_nobody(user_factory):
    # given: a staff account holding no permission, another shopper with a profile
    clerk = user_factory(username="clerk", is_staff=True)
    shopper = user_factory(username="shopper")
    UserProfile.objects.create(user=shopper, propensity=0.4)
    client = Client()
    client.force_login(clerk)
    # when
    profile = client.get("/api/profiles/shopper/")
    export_other = client.get("/api/privacy/users/shopper/export/")
    export_own = client.get("/api/privacy/users/clerk/export/")
    missing = client.get("/api/privacy/users/nobody/export/")
    # then
    assert profile.status_code == export_other.status_code == export_own.status_code == 403
    assert missing.status_code == 403  # no permission: not even whether the user exists
    assert "shopper" not in export_other.content.decode()


@pytest.mark.django_db
def test_each_permission_opens_its_own_endpoint_only(user_factory):
    # given
    reader = user_factory(username="reader", is_staff=True)
    exporter = user_factory(username="exporter")  # not staff: the permission decides
    shopper = user_factory(username="shopper")
    UserProfile.objects.create(user=shopper, propensity=0.4)
    _grant(reader, "view_userprofile")
    _grant(exporter, "export_personal_data")
    as_reader, as_exporter = Client(), Client()
    as_reader.force_login(reader)
    as_exporter.force_login(exporter)
    # when / then
    assert as_reader.get("/api/profiles/shopper/").status_code == 200
    assert as_reader.get("/api/privacy/users/shopper/export/").status_code == 403
    assert as_exporter.get("/api/profiles/shopper/").status_code == 403
    exported = as_exporter.get("/api/privacy/users/shopper/export/")
    assert exported.status_code == 200
    assert exported.json()["user"]["username"] == "shopper"
