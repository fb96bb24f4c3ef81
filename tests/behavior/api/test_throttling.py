"""The plugin's throttles on DRF's defaults: a host that names no rate gets the plugin's own."""

from __future__ import annotations

import json

import pytest
from rest_framework.throttling import ScopedRateThrottle

from behavior.api.throttling import PluginScopedRateThrottle
from behavior.conf import behavior_settings
from behavior.models import Event


def _post_event(client, product):
    return client.post(
        "/api/events/",
        data=json.dumps({"event_type": "view", "item": product.sku}),
        content_type="application/json",
    )


@pytest.fixture
def drf_default_rates(monkeypatch):
    """DRF's own default: no throttle rate named for any scope."""
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {})


@pytest.mark.django_db
def test_events_are_stored_when_the_host_names_no_rate(client, product, drf_default_rates):
    # when a shopper posts an event on a host with DRF's default settings
    response = _post_event(client, product)

    # then it is stored (it used to answer 500: "No default throttle rate set for 'events' scope")
    assert response.status_code == 202
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_recommendation_lists_are_served_when_the_host_names_no_rate(client, catalogue, drf_default_rates):
    # when
    popular = client.get("/api/items/popular/")
    mine = client.get("/api/recommendations/")

    # then
    assert (popular.status_code, mine.status_code) == (200, 200)


def test_the_plugins_defaults_apply_only_to_unnamed_scopes(drf_default_rates, monkeypatch):
    # given a host that names the recommendations scope only, and a scope of its own without a rate
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"recommendations": "5/min"})
    throttle = PluginScopedRateThrottle()

    # then the plugin's default fills the unnamed plugin scope, the host's rate wins elsewhere
    throttle.scope = "events"
    assert throttle.get_rate() == behavior_settings.THROTTLE_RATES["events"] == "1200/min"
    throttle.scope = "recommendations"
    assert throttle.get_rate() == "5/min"
    # and a scope that is not the plugin's stays DRF's business (its own error)
    throttle.scope = "checkout"
    with pytest.raises(Exception, match="No default throttle rate set for 'checkout' scope"):
        throttle.get_rate()


@pytest.mark.django_db
def test_the_default_rate_throttles(client, product, drf_default_rates, monkeypatch):
    # given the plugin's default for events lowered to two a minute, and no host rate
    monkeypatch.setitem(behavior_settings.THROTTLE_RATES, "events", "2/min")

    # when
    codes = [_post_event(client, product).status_code for _ in range(3)]

    # then the third is refused with 429, not 500
    assert codes == [202, 202, 429]


@pytest.mark.django_db
def test_a_host_rate_of_none_turns_the_throttle_off(client, product, monkeypatch):
    # given
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": None})
    monkeypatch.setitem(behavior_settings.THROTTLE_RATES, "events", "1/min")

    # when
    codes = {_post_event(client, product).status_code for _ in range(3)}

    # then
    assert codes == {202}
