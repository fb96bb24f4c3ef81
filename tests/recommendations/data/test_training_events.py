"""The training window streamed into packed, memory-mapped arrays: the same events as the log."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from behavior.items import item_key
from recommendations.core.packed_events import PackedEvents
from recommendations.data.events import load_event_log
from recommendations.data.training_events import stream_training_events
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.swappable]


def _rows(log):
    return sorted(
        zip(*(col.tolist() for col in (log.users, log.items, log.event_types, log.timestamps)), strict=True)
    )


def test_streamed_folder_holds_each_shopper_contiguous_and_oldest_first(
    tmp_path, event_factory, user_factory, item_factory
):
    # given: two users and an anonymous visitor, their events written out of order
    alice, bob = user_factory(username="alice"), user_factory(username="bob")
    first, second = item_factory(), item_factory()
    now = timezone.now().replace(microsecond=0)
    event_factory(user=bob, item=first, event_type="view", occurred_at=now)
    event_factory(user=alice, item=second, event_type="purchase", occurred_at=now, value=Decimal("9.50"))
    event_factory(user=None, visitor_id="vis-1", item=second, event_type="view", occurred_at=now)
    event_factory(user=alice, item=first, event_type="view", occurred_at=now - timedelta(hours=1))
    event_factory(user=bob, item=second, event_type="add_to_cart", occurred_at=now - timedelta(hours=3))

    # when: streamed two rows per round trip
    packed = stream_training_events(tmp_path, chunk_size=2)

    # then: one row per shopper, its events in time order, keys as the log names them
    assert sorted(packed.users) == ["alice", "bob", "v:vis-1"]
    alice_row = packed.users.index("alice")
    items, types, times = packed.user_events(alice_row)
    assert types.tolist() == [1, 6]  # view, purchase
    assert [packed.item_keys[i] for i in items] == [item_key(first), item_key(second)]
    assert times.tolist() == [(now - timedelta(hours=1)).timestamp(), now.timestamp()]
    values = packed.values[packed.rows_of(alice_row)].tolist()
    assert math.isnan(values[0]) and values[1] == 9.5
    assert PackedEvents.open(tmp_path).n_events == 5


def test_streamed_events_equal_the_in_memory_log_of_the_same_window(
    tmp_path, event_factory, user_factory, item_factory
):
    # given: events inside and outside a 7-day window
    shoppers = [user_factory(username=f"u{k}") for k in range(4)]
    items = [item_factory() for _ in range(3)]
    now = timezone.now().replace(microsecond=0)
    for k in range(24):
        event_factory(
            user=shoppers[k % 4],
            item=items[k % 3],
            event_type=("view", "add_to_cart", "purchase")[k % 3],
            occurred_at=now - timedelta(days=k % 10, minutes=k),
        )

    # when
    packed = stream_training_events(tmp_path, window_days=7, clock=now, chunk_size=5)

    # then
    expected = load_event_log(window_days=7, clock=now)
    assert len(expected) == 18
    assert _rows(packed.to_event_log()) == _rows(expected)
