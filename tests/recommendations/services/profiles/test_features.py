"""The events a rebuild reads: in primary-key order, whether read for a few users or for everyone."""

from __future__ import annotations

import numpy as np
import pytest

from behavior.models import Event
from recommendations.services.profiles.features import load_catalogue, load_profile_events
from tests.recommendations.services.profiles.test_fanout import _shop


@pytest.mark.django_db
def test_a_users_events_come_in_key_order_read_alone_or_with_everyone(user_factory, event_factory, catalogue):
    # given shoppers whose events were stored out of time order
    shoppers = sorted(s.pk for s in _shop(user_factory, event_factory, catalogue, users=6))
    catalogue_rows = load_catalogue()
    # when their events are read for everyone in one scan, and for the last three users alone
    everyone = load_profile_events(shoppers, catalogue_rows, restrict=False)
    some = load_profile_events(shoppers[3:], catalogue_rows, restrict=True)
    # then every user's events are in primary-key order either way (sums add in the same order)
    keys = list(
        Event.objects.filter(user_id__in=shoppers).order_by("pk").values_list("user_id", "occurred_at")
    )
    assert [(shoppers[u], t) for u, t in zip(everyone.users, everyone.timestamps, strict=True)] == [
        (user, at.timestamp()) for user, at in keys
    ]
    mine = everyone.users >= 3
    np.testing.assert_array_equal(some.users + 3, everyone.users[mine])
    for name in ("timestamps", "values", "quantities", "categories", "prices", "is_bot"):
        np.testing.assert_array_equal(getattr(some, name), getattr(everyone, name)[mine])
