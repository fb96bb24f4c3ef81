"""``POST /api/events/``: status codes, per-event errors, identity, limits, schema."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from behavior.identity import read_visitor, sign_visitor
from behavior.models import Event
from behavior.services.ingest import VISITOR_NAMED_BY_CLIENT

URL = "/api/events/"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


@pytest.fixture
def client():
    return APIClient(HTTP_USER_AGENT=BROWSER)


def _post(client, payload, **extra):
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(URL, body, content_type="application/json", **extra)


@pytest.mark.django_db
def test_single_event_is_accepted_with_202(client, product):
    # when
    response = _post(client, {"event_type": "view", "item": product.sku})
    # then
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    event = Event.objects.get()
    assert event.item == product
    cookie = response.cookies["rec_vid"]  # the visitor id the middleware issued: signed, HttpOnly
    assert read_visitor(cookie.value).id == event.visitor_id and len(event.visitor_id) == 32
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_batch_with_mixed_events_stores_valid_ones_and_reports_the_rest(client, product):
    # given
    event_id = str(uuid.uuid4())
    payload = {
        "events": [
            {"event_type": "view", "item": product.sku, "event_id": event_id},
            {"event_type": "view", "item": "NOPE"},
            {
                "event_type": "click",
                "item": product.sku,
                "recommendation_id": str(uuid.uuid4()),
                "placement": "home",
                "position": 2,
            },
            {"event_type": "view", "item": product.sku, "event_id": event_id},
            42,
        ]
    }
    # when
    response = _post(client, payload)
    # then: 400 names each bad event; the good ones are stored all the same
    assert response.status_code == 400
    assert response.json() == {
        "detail": "2 of 5 events rejected (see rejected[].index); the other 3 were stored "
        "(2 new, 1 already stored).",
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "errors": {"item": ["Unknown item."]}},
            {"index": 4, "errors": {"non_field_errors": ["Expected an object."]}},
        ],
    }
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_resending_a_batch_stores_nothing_twice(client, product):
    # given
    payload = {
        "events": [
            {"event_type": "view", "item": product.sku, "event_id": str(uuid.uuid4())} for _ in range(25)
        ]
    }
    _post(client, payload)
    # when
    response = _post(client, payload)
    # then
    assert response.json() == {"accepted": 0, "duplicates": 25, "rejected": []}
    assert Event.objects.count() == 25


@pytest.mark.django_db
def test_an_event_of_a_month_without_partition_is_accepted_into_the_default_partition(client, product):
    # given: an event of March 2020 (on PostgreSQL no partition holds that month)
    event = {"event_type": "view", "item": product.sku, "occurred_at": "2020-03-10T08:00:00Z"}
    # when
    response = _post(client, event)
    # then: stored and acknowledged like any other; where it went is the operator's concern
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT tableoid::regclass::text FROM behavior_event")
            assert cursor.fetchall() == [("behavior_event_default",)]


@pytest.mark.django_db
def test_an_event_id_reused_with_another_time_answers_409_and_stores_the_others(client, product):
    # given: an event stored with its time
    event_id = str(uuid.uuid4())
    first = {
        "event_type": "view",
        "item": product.sku,
        "event_id": event_id,
        "occurred_at": "2026-12-01T10:00:00Z",
    }
    _post(client, first)
    # when: the same id comes back naming another time, beside a new event
    other = {"event_type": "view", "item": product.sku}
    response = _post(client, {"events": [other, {**first, "occurred_at": "2026-12-01T11:00:00Z"}]})
    # then: 409, the reused id named by index and field, the new event stored, nothing twice
    assert response.status_code == 409
    assert response.json() == {
        "detail": "1 of 2 events rejected (see rejected[].index); the other 1 were stored "
        "(1 new, 0 already stored).",
        "accepted": 1,
        "duplicates": 0,
        "rejected": [
            {
                "index": 1,
                "errors": {
                    "event_id": [
                        "This event_id is stored with another occurred_at: a re-sent event keeps its "
                        "time, another event needs another id."
                    ]
                },
            }
        ],
    }
    assert Event.objects.filter(event_id=event_id).count() == 1
    assert Event.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'"text"',
        b"null",
        b"[" * 100_000,
        b'{"events": "x"}',
        b'{"events": []}',
        b'{"events": [], "more": 1}',
        b"1" * 5000,
    ],
)
def test_malformed_bodies_answer_400(client, body):
    # when
    response = _post(client, body)
    # then
    assert response.status_code == 400
    assert "detail" in response.json()
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_too_many_events_answer_413(client, product):
    # given
    payload = {"events": [{"event_type": "view", "item": product.sku}] * 11}
    # when
    with override_settings(RECOMMENDER={"ITEM_KEY_FIELD": "sku", "MAX_BATCH_EVENTS": 10}):
        response = _post(client, payload)
    # then
    assert response.status_code == 413
    assert response.json() == {"detail": "11 events in one request; at most 10."}
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_too_large_body_answers_413(client, product):
    # given
    payload = {"events": [{"event_type": "view", "item": product.sku, "context": {"pad": "x" * 5000}}] * 300}
    # when
    response = _post(client, payload)
    # then
    assert response.status_code == 413
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_oversize_single_event_is_rejected_alone(client, product):
    # when
    response = _post(
        client,
        {
            "events": [
                {"event_type": "view", "item": product.sku, "context": {"pad": "x" * 9000}},
                {"event_type": "view", "item": product.sku},
            ]
        },
    )
    # then
    body = response.json()
    assert response.status_code == 400
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 0
    assert "non_field_errors" in body["rejected"][0]["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event_type": "view", "item": "A\u0000B"}, "item"),
        ({"event_type": "view", "item": "<script>alert(1)</script>"}, "item"),
        ({"event_type": "view", "item": "@", "placement": "<script>alert(1)</script>"}, "placement"),
        ({"event_type": "view", "item": "@", "context": {"q": "\u0000"}}, "context"),
        ({"event_type": ["view"], "item": "@"}, "event_type"),
        ({"event_type": "view", "item": {"sku": "@"}}, "item"),
        ({"event_type": "view", "item": "@", "value": 1e308 * 10}, "value"),
        ({"event_type": "view", "item": "@", "value": 10**200}, "value"),
        ({"event_type": "view", "item": "@", "quantity": 10**100}, "quantity"),
        ({"event_type": "view", "item": "@", "position": 10**9}, "position"),
        ({"event_type": "view", "item": "@", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"event_type": "view", "item": "@", "occurred_at": 10**20}, "occurred_at"),
        ({"event_type": "levitate", "item": "@"}, "event_type"),
        ({"event_type": "view", "item": "NOT-IN-CATALOGUE"}, "item"),
    ],
)
def test_bad_events_are_rejected_never_500(client, product, event, field):
    # given
    event = {k: (product.sku if v == "@" else v) for k, v in event.items()}
    body = json.dumps(event, allow_nan=True).replace("Infinity", "1e999")
    # when
    response = _post(client, body)
    # then
    assert response.status_code == 400
    assert response.json()["detail"] == "The event was rejected; nothing was stored."
    assert response.json()["accepted"] == 0
    assert field in response.json()["rejected"][0]["errors"]
    assert Event.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        (-70000000000, "Timestamp out of range."),
        ("-70000000000", "Timestamp out of range."),
        ("9999-12-31T23:59:59-05:00", "Timestamp out of range."),
        ("0001-01-01T00:00:00+05:00", "Timestamp out of range."),
        (-1e11, "Timestamp out of range."),
        (1e11, "Is in the future."),
        ("0001-01-01T00:00:00-05:00", "Is too far in the past."),
    ],
)
def test_timestamps_beyond_the_calendar_are_rejected_with_index_and_field(client, product, stamp, reason):
    # given: one event whose time overflows between 30 good ones (the bulk insert path)
    events = [{"event_type": "view", "item": product.sku} for _ in range(31)]
    events[7]["occurred_at"] = stamp
    # when
    response = _post(client, {"events": events})
    # then
    assert response.status_code == 400
    body = response.json()
    assert body["rejected"] == [{"index": 7, "errors": {"occurred_at": [reason]}}]
    assert body["accepted"] == 30
    assert Event.objects.count() == 30


@pytest.mark.django_db
def test_a_lone_surrogate_as_a_key_is_rejected_by_name(client, product):
    # given: JSON text may escape a lone surrogate, which no UTF-8 answer could echo as is
    event = f'{{"event_type": "view", "item": "{product.sku}"'
    body = f'{{"events": [{event}, "\\ud800": 1}}, {event}}}]}}'
    # when
    response = _post(client, body)
    # then
    assert response.status_code == 400
    assert response.json()["rejected"] == [{"index": 0, "errors": {"\\ud800": ["Unknown field."]}}]
    assert Event.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [21, 900])
def test_a_context_nested_too_deeply_is_rejected_by_field(client, product, depth):
    # given
    context = '{"a": ' * depth + "1" + "}" * depth
    event = f'{{"event_type": "view", "item": "{product.sku}"'
    body = f'{{"events": [{event}}}, {event}, "context": {context}}}]}}'
    # when
    response = _post(client, body)
    # then
    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 1, "errors": {"context": ["Nested too deeply (at most 20 levels)."]}}
    ]
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_a_context_nested_twenty_levels_is_stored(client, product):
    # given
    context = '{"a": ' * 20 + "1" + "}" * 20
    # when
    response = _post(client, f'{{"event_type": "view", "item": "{product.sku}", "context": {context}}}')
    # then
    assert response.status_code == 202
    assert Event.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["user", "user_id", "username"])
def test_user_comes_from_authentication_never_from_the_body(client, user, other_user, product, key):
    # given
    client.force_authenticate(user)
    # when
    response = _post(
        client,
        {
            "events": [
                {"event_type": "view", "item": product.sku, key: other_user.pk},
                {"event_type": "view", "item": product.sku},
            ]
        },
    )
    # then
    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "errors": {key: ["The user is taken from authentication; remove this field."]}}
    ]
    assert list(Event.objects.values_list("user_id", flat=True)) == [user.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("with_cookie", [False, True])
def test_a_browser_can_never_name_the_visitor_in_the_body(client, product, with_cookie):
    # given
    if with_cookie:
        client.cookies["rec_vid"] = sign_visitor("a" * 32)
    event = {"event_type": "view", "item": product.sku, "visitor_id": "b" * 32}
    # when
    response = _post(client, {"events": [event, {"event_type": "view", "item": product.sku}]})
    # then
    assert response.status_code == 400
    assert response.json()["rejected"] == [{"index": 0, "errors": {"visitor_id": [VISITOR_NAMED_BY_CLIENT]}}]
    issued = "a" * 32 if with_cookie else read_visitor(response.cookies["rec_vid"].value).id
    assert Event.objects.get().visitor_id == issued


@pytest.mark.django_db
def test_bot_user_agent_is_flagged(product):
    # given
    client = APIClient(HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1)")
    # when
    _post(client, {"event_type": "view", "item": product.sku})
    # then
    assert Event.objects.get().is_bot is True


@pytest.mark.django_db
def test_do_not_track_is_acknowledged_and_not_stored(client, product):
    # when
    response = _post(client, {"event_type": "view", "item": product.sku}, HTTP_DNT="1")
    # then
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_events_are_throttled(client, product, monkeypatch):
    # given
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": "2/min"})
    event = {"event_type": "view", "item": product.sku}
    # when
    codes = [_post(client, event).status_code for _ in range(3)]
    # then
    assert codes == [202, 202, 429]


@pytest.mark.django_db
def test_endpoint_is_in_the_openapi_schema(client):
    # when
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    # then
    schema = json.loads(response.content)
    operation = schema["paths"]["/api/events/"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "413", "429"}
    assert "EventPayload" in json.dumps(operation["requestBody"])
    assert "IngestResult" in schema["components"]["schemas"]
