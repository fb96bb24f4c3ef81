"""The database-to-core bridge: ``load_event_log`` and ``load_histories``."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from behavior.items import item_key
from behavior.services import partition_maintenance, partitions
from recommendations.data.events import load_event_log, window_events
from recommendations.data.histories import load_histories
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.swappable]


def _rows(log):
    return sorted(
        zip(
            log.users.tolist(),
            log.items.tolist(),
            log.event_types.tolist(),
            log.timestamps.tolist(),
            strict=True,
        )
    )


def test_event_log_has_one_row_per_event_with_string_item_keys(event_factory, user_factory, item_factory):
    # given two items and a user's three events
    shopper = user_factory(username="alice")
    first, second = item_factory(), item_factory()
    now = timezone.now().replace(microsecond=0)
    event_factory(user=shopper, item=first, event_type="view", occurred_at=now - timedelta(hours=2))
    event_factory(user=shopper, item=second, event_type="add_to_cart", occurred_at=now - timedelta(hours=1))
    event_factory(user=shopper, item=second, event_type="purchase", occurred_at=now, value=Decimal("19.99"))

    # when the log is loaded
    log = load_event_log()

    # then items are the public keys (strings), never primary keys of another type
    assert _rows(log) == sorted(
        [
            ("alice", item_key(first), "view", (now - timedelta(hours=2)).timestamp()),
            ("alice", item_key(second), "add_to_cart", (now - timedelta(hours=1)).timestamp()),
            ("alice", item_key(second), "purchase", now.timestamp()),
        ]
    )
    assert all(isinstance(key, str) for key in log.items)
    assert log.timestamps.dtype == np.float64
    assert sorted(v for v in log.values.tolist() if not math.isnan(v)) == [19.99]
    assert int(np.isnan(log.values).sum()) == 2
    assert log.is_bot.tolist() == [False, False, False]


def test_anonymous_visitors_are_keyed_v_prefix_and_keyless_events_are_skipped(event_factory, item_factory):
    # given an anonymous visitor's event and an event with neither user nor visitor
    product = item_factory()
    event_factory(user=None, visitor_id="abc123", item=product)
    event_factory(user=None, visitor_id="", item=product)

    # when the log is loaded
    log = load_event_log()

    # then the visitor is "v:<visitor_id>" and the anonymous-without-id event is dropped
    assert log.users.tolist() == ["v:abc123"]
    assert log.items.tolist() == [item_key(product)]


def test_bot_events_and_events_without_item_are_excluded(event_factory, user_factory, item_factory):
    # given a human view, a bot view and a search without item
    shopper = user_factory(username="bob")
    product = item_factory()
    event_factory(user=shopper, item=product, event_type="view")
    event_factory(user=shopper, item=product, event_type="view", is_bot=True)
    event_factory(user=shopper, item=None, event_type="search")

    # when the log is loaded
    log = load_event_log()

    # then only the human event with an item remains
    assert log.users.tolist() == ["bob"]
    assert log.event_types.tolist() == ["view"]


def test_window_keeps_only_recent_events(event_factory, user_factory, item_factory):
    # given events 10 days and 1 day old
    shopper = user_factory(username="carol")
    old, recent = item_factory(), item_factory()
    event_factory(user=shopper, item=old, occurred_at=timezone.now() - timedelta(days=10))
    event_factory(user=shopper, item=recent, occurred_at=timezone.now() - timedelta(days=1))

    # when the log is loaded with a 5-day window, and without one
    windowed = load_event_log(window_days=5)
    everything = load_event_log()

    # then the window drops the old event only
    assert windowed.items.tolist() == [item_key(recent)]
    assert sorted(everything.items.tolist()) == sorted([item_key(old), item_key(recent)])


def test_user_ids_restricts_to_those_users(event_factory, user_factory, item_factory):
    # given two users and a visitor with events
    alice, bob = user_factory(username="alice"), user_factory(username="bob")
    product = item_factory()
    event_factory(user=alice, item=product)
    event_factory(user=bob, item=product)
    event_factory(user=None, visitor_id="v1", item=product)

    # when only alice's events are asked for
    log = load_event_log(user_ids=[alice.pk])

    # then bob's and the visitor's are left out
    assert log.users.tolist() == ["alice"]


def test_streaming_in_small_chunks_loads_every_event(event_factory, user_factory, item_factory):
    # given 7 events (more than several chunks of 2)
    shopper = user_factory(username="dave")
    products = [item_factory() for _ in range(7)]
    for product in products:
        event_factory(user=shopper, item=product)

    # when the log streams with a chunk size of 2
    log = load_event_log(chunk_size=2)

    # then the growing arrays hold all 7 rows
    assert len(log) == 7
    assert sorted(log.items.tolist()) == sorted(item_key(p) for p in products)


def test_empty_table_gives_an_empty_log(db):
    # given no events / when the log is loaded
    log = load_event_log()

    # then it is empty but well formed
    assert len(log) == 0
    assert log.timestamps.dtype == np.float64


def test_histories_are_latest_events_oldest_first_per_shopper(event_factory, user_factory, item_factory):
    # given a user with 4 events, another user, a visitor and a bot event
    alice, bob = user_factory(username="alice"), user_factory(username="bob")
    products = [item_factory() for _ in range(4)]
    start = timezone.now().replace(microsecond=0) - timedelta(hours=10)
    for hour, product in enumerate(products):
        event_factory(user=alice, item=product, occurred_at=start + timedelta(hours=hour))
    event_factory(user=bob, item=products[0], event_type="wishlist", occurred_at=start)
    event_factory(user=None, visitor_id="anon", item=products[1], occurred_at=start)
    event_factory(user=alice, item=products[0], occurred_at=start + timedelta(hours=9), is_bot=True)

    # when the latest 2 events of alice and the visitor are read
    histories = load_histories(users=[alice], visitors=["anon"], limit=2)

    # then alice gets her last two events oldest first, the visitor his one; bob is not asked for
    assert histories == {
        "alice": [
            (item_key(products[2]), "view", (start + timedelta(hours=2)).timestamp()),
            (item_key(products[3]), "view", (start + timedelta(hours=3)).timestamp()),
        ],
        "v:anon": [(item_key(products[1]), "view", start.timestamp())],
    }


def test_histories_of_everyone_and_by_primary_key(event_factory, user_factory, item_factory):
    # given a user and a visitor with one event each
    alice = user_factory(username="alice")
    product = item_factory()
    event_factory(user=alice, item=product)
    event_factory(user=None, visitor_id="anon", item=product)

    # when histories are read for everyone, by primary key, and for an empty list
    everyone = load_histories()
    by_pk = load_histories(users=[alice.pk])
    nobody = load_histories(users=[])

    # then every shopper / only alice / nobody
    assert sorted(everyone) == ["alice", "v:anon"]
    assert list(by_pk) == ["alice"]
    assert nobody == {}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")
def test_a_time_window_reads_only_the_partitions_that_can_hold_it(event_factory, user_factory, item_factory):
    # given: monthly partitions of January to June 2020, each with an event
    shopper, item = user_factory(), item_factory()
    january, june = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 6, 30, tzinfo=UTC)
    partition_maintenance.cover(partitions.EVENTS, january, june)
    for month in range(1, 7):
        event_factory(user=shopper, item=item, occurred_at=datetime(2020, month, 15, tzinfo=UTC))
    # when: the training read of a 30-day window ending on 2020-06-20 is explained
    window = window_events(window_days=30, clock=datetime(2020, 6, 20, tzinfo=UTC))
    plan = window.values_list("item_id", "occurred_at").explain()
    # then: the partitions before the window's start (2020-05-21) are not in the plan; May's, the
    # later ones and DEFAULT (which may hold any time) are
    start = datetime(2020, 5, 21, tzinfo=UTC)
    expected = {p.name for p in partitions.partitions(partitions.EVENTS) if p.is_default or p.upper > start}
    assert set(re.findall(r" on (behavior_event_\w+)", plan)) == expected
    assert {"behavior_event_p20200501", "behavior_event_p20200601"} <= expected
    assert not {"behavior_event_p20200101", "behavior_event_p20200401"} & expected
    assert list(window.values_list("occurred_at", flat=True)) == [datetime(2020, 6, 15, tzinfo=UTC)]
