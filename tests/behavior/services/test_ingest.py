"""The one write path: validation, de-duplication, bot flag, bulk insert, merge, prune."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from behavior.models import Event
from behavior.services import ingest as services
from behavior.services.identity import merge_visitor_into_user
from behavior.services.retention import prune_events

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _key(item):
    from behavior.items import item_key

    return item_key(item)


def test_ingest_stores_one_event_with_all_fields(item):
    # given
    event_id = uuid.uuid4()
    rec_id = uuid.uuid4()
    raw = {
        "event_id": str(event_id),
        "event_type": "purchase",
        "item": _key(item),
        "occurred_at": "2025-03-01T11:30:00Z",
        "value": "12.345",
        "quantity": 2,
        "session_id": "s-1",
        "recommendation_id": str(rec_id),
        "placement": "home",
        "position": 3,
        "context": {"query": "<script>alert(1)</script>"},
    }
    # when
    result = services.ingest_events([raw], visitor_id="visitor-0001", now=NOW)
    # then
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, [])
    event = Event.objects.get()
    assert event.event_id == event_id
    assert event.item_id == item.pk
    assert event.event_type == "purchase"
    assert event.occurred_at == datetime(2025, 3, 1, 11, 30, tzinfo=UTC)
    assert event.received_at == NOW
    assert event.value == Decimal("12.35")
    assert event.quantity == 2
    assert (event.visitor_id, event.session_id, event.user_id) == ("visitor-0001", "s-1", None)
    assert (event.recommendation_id, event.placement, event.position) == (rec_id, "home", 3)
    assert event.context == {"query": "<script>alert(1)</script>"}
    assert event.is_bot is False


@pytest.mark.parametrize("size", [3, 30, 2500])  # ORM path, bulk path, COPY path (on Postgres)
def test_resent_events_count_as_duplicates_and_are_stored_once(make_item, size):
    # given
    item = make_item()
    raws = [_event_for(item, event_id=str(uuid.uuid4())) for _ in range(size)]
    first = services.ingest_events(raws, visitor_id="visitor-0001", now=NOW)
    # when
    second = services.ingest_events(raws, visitor_id="visitor-0001", now=NOW)
    # then
    assert (first.accepted, first.duplicates) == (size, 0)
    assert (second.accepted, second.duplicates, second.rejected) == (0, size, [])
    assert Event.objects.count() == size


def _event_for(item, **extra):
    return {"event_type": "view", "item": _key(item), **extra}


def test_same_event_twice_in_one_batch_is_one_duplicate(item):
    # given
    event_id = str(uuid.uuid4())
    raws = [_event_for(item, event_id=event_id), _event_for(item, event_id=event_id)]
    # when
    result = services.ingest_events(raws, visitor_id="visitor-0001", now=NOW)
    # then
    assert (result.accepted, result.duplicates) == (1, 1)
    assert Event.objects.count() == 1


def test_batch_with_valid_and_invalid_events_stores_the_valid_ones(item, other_item):
    # given
    raws = [
        _event_for(item),
        {"event_type": "teleport", "item": _key(item)},
        _event_for(other_item),
        "not an object",
        {"event_type": "view", "item": "NO-SUCH-ITEM"},
    ]
    # when
    result = services.ingest_events(raws, visitor_id="visitor-0001", now=NOW)
    # then
    assert result.accepted == 2
    assert [r["index"] for r in result.rejected] == [1, 3, 4]
    assert list(result.rejected[0]["errors"]) == ["event_type"]
    assert result.rejected[1]["errors"] == {"non_field_errors": ["Expected an object."]}
    assert result.rejected[2]["errors"] == {"item": ["Unknown item."]}
    assert sorted(Event.objects.values_list("item_id", flat=True)) == sorted([item.pk, other_item.pk])


BAD_EVENTS = [
    ({"event_type": "view", "item": "A\x00B"}, "item"),
    ({"event_type": "view", "item": "<script>alert(1)</script>"}, "item"),
    ({"event_type": "view", "item": ["x"]}, "item"),
    ({"event_type": "view", "item": True}, "item"),
    ({"event_type": 7, "item": "@"}, "event_type"),
    ({"event_type": "explode", "item": "@"}, "event_type"),
    ({"item": "@"}, "event_type"),
    ({"event_type": "view"}, "item"),
    ({"event_type": "view", "item": "@", "occurred_at": "2030-01-01T00:00:00Z"}, "occurred_at"),
    ({"event_type": "view", "item": "@", "occurred_at": "yesterday"}, "occurred_at"),
    ({"event_type": "view", "item": "@", "occurred_at": 1e300}, "occurred_at"),
    ({"event_type": "view", "item": "@", "value": 10**40}, "value"),
    ({"event_type": "view", "item": "@", "value": "NaN"}, "value"),
    ({"event_type": "view", "item": "@", "value": float("inf")}, "value"),
    ({"event_type": "view", "item": "@", "value": {"a": 1}}, "value"),
    ({"event_type": "view", "item": "@", "quantity": 10**30}, "quantity"),
    ({"event_type": "view", "item": "@", "quantity": "2"}, "quantity"),
    ({"event_type": "view", "item": "@", "quantity": 0}, "quantity"),
    ({"event_type": "view", "item": "@", "position": -1}, "position"),
    ({"event_type": "view", "item": "@", "event_id": "not-a-uuid"}, "event_id"),
    ({"event_type": "view", "item": "@", "recommendation_id": 12}, "recommendation_id"),
    ({"event_type": "view", "item": "@", "placement": "<script>"}, "placement"),
    ({"event_type": "view", "item": "@", "session_id": "x" * 65}, "session_id"),
    ({"event_type": "view", "item": "@", "context": "text"}, "context"),
    ({"event_type": "view", "item": "@", "context": {"q": "a\x00b"}}, "context"),
    ({"event_type": "view", "item": "@", "context": {"q": "\ud800"}}, "context"),
    ({"event_type": "view", "item": "@", "user_id": 1}, "user_id"),
    ({"event_type": "view", "item": "@", "user": "admin"}, "user"),
    ({"event_type": "view", "item": "@", "colour": "red"}, "colour"),
    ({"event_type": "view", "item": "@", "context": {"blob": "x" * 9000}}, "non_field_errors"),
]


@pytest.mark.parametrize(("raw", "field"), BAD_EVENTS)
def test_bad_input_is_rejected_naming_the_field(item, raw, field):
    # given: "@" stands for the key of an existing item
    raw = {k: (_key(item) if v == "@" else v) for k, v in raw.items()}
    # when
    result = services.ingest_events([raw, _event_for(item)], visitor_id="visitor-0001", now=NOW)
    # then
    assert result.accepted == 1
    assert len(result.rejected) == 1
    assert result.rejected[0]["index"] == 0
    assert field in result.rejected[0]["errors"]
    assert Event.objects.count() == 1


def test_time_window_accepts_the_tolerance_and_unix_seconds(item):
    # given
    soon = NOW + timedelta(seconds=200)
    raws = [
        _event_for(item, occurred_at=soon.isoformat()),
        _event_for(item, occurred_at=NOW.timestamp() - 60),
        _event_for(item, occurred_at="2025-03-01T10:00:00"),  # naive means UTC
    ]
    # when
    result = services.ingest_events(raws, visitor_id="visitor-0001", now=NOW)
    # then
    assert result.accepted == 3
    assert sorted(Event.objects.values_list("occurred_at", flat=True)) == [
        datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        NOW - timedelta(seconds=60),
        soon,
    ]


def test_search_event_needs_no_item():
    # when
    result = services.ingest_events(
        [{"event_type": "search", "context": {"query": "red shoes"}}], visitor_id="visitor-0001", now=NOW
    )
    # then
    assert result.accepted == 1
    assert Event.objects.get().item_id is None


def test_anonymous_event_without_visitor_is_rejected(item):
    # when
    result = services.ingest_events([_event_for(item)], now=NOW)
    # then
    assert result.rejected == [
        {"index": 0, "errors": {"visitor_id": ["Required for anonymous events (no visitor cookie)."]}}
    ]


def test_cookie_visitor_wins_over_body_visitor(item):
    # when
    services.ingest_events(
        [_event_for(item, visitor_id="body-visitor")], visitor_id="cookie-visitor", now=NOW
    )
    services.ingest_events([_event_for(item, visitor_id="body-visitor")], default_visitor_id="fresh", now=NOW)
    # then
    assert sorted(Event.objects.values_list("visitor_id", flat=True)) == ["body-visitor", "cookie-visitor"]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", False),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", True),
        ("python-requests/2.31", True),
        ("", False),
    ],
)
def test_bot_flag_from_user_agent(item, agent, expected):
    # when
    services.ingest_events([_event_for(item)], visitor_id="visitor-0001", user_agent=agent, now=NOW)
    # then
    assert Event.objects.get().is_bot is expected


def test_user_is_taken_from_the_caller(item, user):
    # when
    services.ingest_events([_event_for(item)], user=user, visitor_id="visitor-0001", now=NOW)
    # then
    event = Event.objects.get()
    assert (event.user_id, event.visitor_id) == (user.pk, "visitor-0001")


def test_merge_visitor_into_user_attaches_only_that_visitors_anonymous_events(item, user, other_user):
    # given
    services.ingest_events([_event_for(item), _event_for(item)], visitor_id="visitor-0001", now=NOW)
    services.ingest_events([_event_for(item)], visitor_id="visitor-0002", now=NOW)
    services.ingest_events([_event_for(item)], user=other_user, visitor_id="visitor-0001", now=NOW)
    # when
    merged = merge_visitor_into_user("visitor-0001", user)
    # then
    assert merged == 2
    assert Event.objects.filter(user=user).count() == 2
    assert Event.objects.filter(user=other_user).count() == 1
    assert Event.objects.filter(user__isnull=True).count() == 1
    assert merge_visitor_into_user("", user) == 0


def test_prune_events_deletes_only_events_past_retention(item):
    # given
    old = [_event_for(item, occurred_at=(NOW - timedelta(days=40)).isoformat()) for _ in range(5)]
    recent = [_event_for(item, occurred_at=(NOW - timedelta(days=10)).isoformat()) for _ in range(2)]
    services.ingest_events(old + recent, visitor_id="visitor-0001", now=NOW)
    # when
    deleted = prune_events(retention_days=30, batch_size=2, now=NOW)
    # then
    assert deleted == 5
    assert Event.objects.count() == 2


def test_prune_events_keeps_everything_when_retention_is_none(item):
    # given
    services.ingest_events(
        [_event_for(item, occurred_at="2020-01-01T00:00:00Z")], visitor_id="visitor-0001", now=NOW
    )
    # when
    with override_settings(RECOMMENDER={"EVENT_RETENTION_DAYS": None, "ITEM_KEY_FIELD": _key_field()}):
        deleted = prune_events(now=NOW)
    # then
    assert deleted == 0
    assert Event.objects.count() == 1


def _key_field():
    from behavior.items import item_key_field

    return item_key_field()
