"""Real-time re-ranking through the active behaviour network, and the precomputed fast path."""

from __future__ import annotations

import pytest

from recommendations.models import PrecomputedList
from recommendations.serving import recommend_for
from recommendations.serving.precompute import refresh_recommendations
from tests.recommendations.conftest import days_ago


@pytest.mark.django_db
def test_fresh_session_events_change_the_next_list(active_model, event_factory):
    # given a visitor who looked at hats
    from shop.models import Product

    for i in range(3):
        event_factory(
            user=None,
            visitor_id="visitor-0001",
            item=Product.objects.get(sku=f"H{i}"),
            event_type="view",
            occurred_at=days_ago(0.01 - i * 0.001),
        )
    before = recommend_for(visitor_id="visitor-0001", limit=5)
    # when they view shoes
    for i in range(4):
        event_factory(
            user=None,
            visitor_id="visitor-0001",
            item=Product.objects.get(sku=f"S{i}"),
            event_type="view",
            occurred_at=days_ago(0.001 - i * 0.0001),
        )
    after = recommend_for(visitor_id="visitor-0001", limit=5)
    # then the session list is rebuilt from the new events and explained by them
    assert before.source == after.source == "session"
    assert after.model_version == active_model.version_number
    assert before.keys != after.keys
    assert sum(key.startswith("S") for key in after.keys) > sum(key.startswith("S") for key in before.keys)
    assert all(
        entry.reason.startswith("because you viewed") for entry in after.items if entry.source == "session"
    )


@pytest.mark.django_db
def test_precomputed_list_serves_until_newer_events(active_model, event_factory, user):
    # given a user with older events and a precomputed list
    from shop.models import Product

    event_factory(user=user, item=Product.objects.get(sku="S1"), event_type="view", occurred_at=days_ago(2))
    event_factory(
        user=user, item=Product.objects.get(sku="S2"), event_type="purchase", occurred_at=days_ago(1)
    )
    # when
    result = refresh_recommendations()
    served = recommend_for(user=user, limit=5)
    # then
    stored = PrecomputedList.objects.get(user=user)
    assert result.users == 1
    assert "S2" not in stored.item_keys
    assert len(stored.item_keys) == len(stored.reasons) == len(stored.scores)
    assert served.source == "personal"
    assert served.keys == [k for k in stored.item_keys if k not in {"S1", "S2"}][:5]
