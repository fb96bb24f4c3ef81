"""The shopper's history query, compiled once per thread, reads what the queryset reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommendations.serving.history import _events_queryset, _latest_events, load_state


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
