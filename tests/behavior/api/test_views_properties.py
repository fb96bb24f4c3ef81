"""Property-based tests of ``POST /api/events/`` over the event schema (hypothesis).

Two properties, over generated batches:

- whatever the events hold (any JSON: wrong types, extreme numbers and times, lone
  surrogates, deep nesting, unknown keys), the answer is 202, 400 or 409 (only an event id
  stored with another time: the examples share one database, and hypothesis repeats ids),
  never 500, and it accounts for every event: stored, re-sent, or rejected with its index
  and field;
- every valid event of a batch is stored, whatever the other events of the batch hold.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from behavior.models import Event, EventType
from behavior.services.ingest import is_reused_id
from behavior.services.validation import PUBLIC_FIELDS

URL = "/api/events/"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
SKUS = ["PROP-1", "PROP-2", "PROP-3"]
TYPES = [t.value for t in EventType]
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples in CI on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with what databases and encoders choke on: NUL, lone surrogates, long runs.
awkward_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "\ud800", "a\udfff", "é☃", "x" * 300, " ", "1e400", "NaN", "-0"]),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-70000000000, 1e11, -1e11, 2**63, 10**20, 0.5]),
)
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
# Offsets as clocks have them: whole minutes.
minute_offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
any_moment = st.builds(lambda moment, tz: moment.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets)
json_leaves = st.one_of(st.none(), st.booleans(), numbers, awkward_text)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(awkward_text, children, max_size=3),
    max_leaves=12,
)
deep_context = st.integers(min_value=15, max_value=900).map(
    lambda depth: json.loads('{"a": ' * depth + "1" + "}" * depth)
)


def field_value(name: str) -> st.SearchStrategy:
    """Valid and invalid values for one public field."""
    special = {
        "event_type": st.sampled_from(TYPES),
        "item": st.sampled_from(SKUS),
        "occurred_at": st.one_of(any_moment, numbers),
        "event_id": st.uuids().map(str),
        "recommendation_id": st.uuids().map(str),
        "context": st.one_of(deep_context, st.dictionaries(awkward_text, json_values, max_size=4)),
    }.get(name)
    return st.one_of(special, json_values) if special is not None else json_values


any_event = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={name: field_value(name) for name in sorted(PUBLIC_FIELDS) if name != "visitor_id"}
        | {"user": json_values, "\ud800": json_values, "extra": json_values},
    ),
    json_values,  # not even an object
)

recent = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)
valid_event = st.fixed_dictionaries(
    {
        "event_id": st.uuids(version=4).map(str),
        "event_type": st.sampled_from([t for t in TYPES if t != "search"]),
        "item": st.sampled_from(SKUS),
    },
    optional={
        "occurred_at": st.one_of(
            recent.map(lambda m: m.isoformat()),
            st.builds(lambda m, tz: m.astimezone(tz).isoformat(), recent, minute_offsets),
            recent.map(lambda m: int(m.timestamp())),
        ),
        "value": st.decimals(min_value=-(10**9), max_value=10**9, places=2).map(str),
        "quantity": st.integers(min_value=1, max_value=1000),
        "placement": st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
        "position": st.integers(min_value=0, max_value=32767),
        "context": st.dictionaries(
            st.text(max_size=8).filter(lambda t: "\x00" not in t), st.integers(), max_size=3
        ),
    },
)


@pytest.fixture
def shop(product_factory):
    for sku in SKUS:
        product_factory(sku=sku)


def _post(client: APIClient, events: list) -> tuple[int, dict]:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, as a browser's JSON.stringify sends them
    body = json.dumps({"events": events}, allow_nan=True)
    response = client.post(URL, body, content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(events=st.lists(any_event, min_size=1, max_size=12))
def test_any_batch_is_answered_without_500_and_every_event_accounted_for(shop, events):
    # given
    client = APIClient(HTTP_USER_AGENT=BROWSER)
    before = Event.objects.count()
    # when
    status, body = _post(client, events)
    # then
    assert status in (202, 400, 409), body
    indexes = [entry["index"] for entry in body["rejected"]]
    assert (status == 409) == bool(indexes and all(is_reused_id(entry) for entry in body["rejected"]))
    assert indexes == sorted(set(indexes)) and all(0 <= i < len(events) for i in indexes)
    assert all(
        entry["errors"] and all(isinstance(r, list) for r in entry["errors"].values())
        for entry in body["rejected"]
    )
    assert body["accepted"] + body["duplicates"] + len(indexes) == len(events)
    assert (status != 202) == bool(indexes)
    assert Event.objects.count() - before == body["accepted"]


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(
    good=st.lists(valid_event, min_size=1, max_size=30, unique_by=lambda e: e["event_id"]),
    bad=st.lists(any_event, max_size=3),
    data=st.data(),
)
def test_the_valid_events_of_a_batch_are_stored_whatever_else_it_holds(shop, good, bad, data):
    # given: the generated events mixed in among valid ones, with ids of their own (an id an
    # earlier example stored with another time would be refused as reused, rightly)
    good = [{**event, "event_id": str(uuid.uuid4())} for event in good]
    batch = list(good)
    for event in bad:
        batch.insert(data.draw(st.integers(min_value=0, max_value=len(batch))), event)
    client = APIClient(HTTP_USER_AGENT=BROWSER)
    # when
    status, body = _post(client, batch)
    # then
    assert status in (202, 400, 409), body
    wanted = {uuid.UUID(e["event_id"]) for e in good}
    stored = set(Event.objects.filter(event_id__in=wanted).values_list("event_id", flat=True))
    assert stored == wanted
    good_indexes = {i for i, e in enumerate(batch) if any(e is g for g in good)}
    assert not good_indexes & {entry["index"] for entry in body["rejected"]}, (batch, body)
