"""The shopper's history query, compiled once per thread, reads what the queryset reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommendations.services.serving.history import _events_queryset, _latest_events, load_state


@pytest.mark.django_db
def test_compiled_history_equals_the_queryset(catalogue, user, other_user, event_factory):
    # given events of two users and of an anonymous visitor (a bot's among them, items of both categories)
    now = timezone.now()
    products = catalogue["shoes"] + catalogue["hats"]
    for i, product in enumerate(products):
        event_factory(user=user, item=product, occurred_at=now - timedelta(minutes=i), event_type="view")
        event_factory(user=other_user, item=product, occurred_at=now - timedelta(minutes=2 * i))
        event_factory(
            user=None, visitor_id="visitor-0042", item=product, occurred_at=now - timedelta(seconds=i)
        )
    event_factory(user=user, item=products[3], occurred_at=now + timedelta(minutes=1), is_bot=True)
    # when read through the compiled query, twice (the second time from the per-thread cache)
    for _ in range(2):
        for user_id, visitor_id in ((user.pk, ""), (other_user.pk, ""), (None, "visitor-0042")):
            got = _latest_events(user_id, visitor_id, 7)
            # then the rows are the queryset's, newest first, bots left out
            assert got == list(_events_queryset(user_id, visitor_id, 7))
            assert len(got) == 7
    state = load_state(user=user)
    assert [key for key, _, _ in state.history] == [p.sku for p in reversed(products)][-50:]
    assert state.latest_ts == pytest.approx(now.timestamp())


@pytest.mark.django_db
def test_compiled_purchases_and_marks_are_the_users_own(catalogue, user, other_user, event_factory):
    from recommendations.services.serving.history import purchased_keys
    from recommendations.services.serving.state import mark_not_interested, not_interested_keys

    # given purchases and marks of two users (and a view, which is no purchase)
    shoes, hats = catalogue["shoes"], catalogue["hats"]
    for product in shoes[:3]:
        event_factory(user=user, item=product, event_type="purchase")
    event_factory(user=user, item=hats[0], event_type="view")
    event_factory(user=other_user, item=hats[1], event_type="purchase")
    mark_not_interested(user_id=user.pk, visitor_id="", item_key="H5")
    mark_not_interested(user_id=other_user.pk, visitor_id="", item_key="H6")
    mark_not_interested(user_id=None, visitor_id="visitor-0042", item_key="H7")
    # when read twice (the second time through the compiled queries) / then each their own
    for _ in range(2):
        assert purchased_keys(user.pk) == {"S0", "S1", "S2"}
        assert purchased_keys(other_user.pk) == {"H1"}
        assert not_interested_keys(user.pk, "") == {"H5"}
        assert not_interested_keys(other_user.pk, "") == {"H6"}
        assert not_interested_keys(None, "visitor-0042") == {"H7"}


@pytest.mark.django_db
def test_history_times_are_the_events_instants_to_the_microsecond(catalogue, user, event_factory):
    # given events at instants with microseconds (the freshness markers compare their text)
    from recommendations.services.serving.freshness import marker_text

    start = timezone.now().replace(microsecond=0)
    moments = [start - timedelta(minutes=i, microseconds=987_653 - 7 * i) for i in range(5)]
    for moment, product in zip(moments, catalogue["shoes"], strict=False):
        event_factory(user=user, item=product, occurred_at=moment, event_type="view")
    # when the history is read
    state = load_state(user=user)
    # then its times are the instants themselves, as the markers derive them from the events
    assert [ts for _, _, ts in state.history] == [moment.timestamp() for moment in reversed(moments)]
    assert marker_text(state.latest_ts) == marker_text(moments[0].timestamp())
