"""The fast paths of ingestion store exactly what the generic paths would.

- ``content_event_id`` == ``uuid.uuid5(IMPORT_NAMESPACE, ...)`` (the import idempotency key);
- ``event_size_at_most`` never answers "small" for an event above the cap;
- the CSV import's fast path stores the same rows as the per-event path;
- the Postgres JSON insert stores every column exactly and counts duplicates (Postgres only).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from behavior.models import Event
from behavior.services import storage
from behavior.services import validation as v
from behavior.services.import_fastpath import IMPORT_NAMESPACE, content_event_id
from behavior.services.importing import import_events_csv


@pytest.mark.parametrize(
    "content",
    ["alice\x1fK-1\x1fview\x1f1700000000000000\x1f\x1f", "", "é\x1f☃\x1f𝄞", "x" * 500],
)
def test_content_event_id_equals_uuid5(content):
    # when
    fast = content_event_id(content)
    # then
    assert fast == uuid.uuid5(IMPORT_NAMESPACE, content).hex


@pytest.mark.parametrize(
    "raw",
    [
        {"event_type": "view", "item": "K-1", "visitor_id": "v" * 64},
        {"event_type": "view", "item": "😀" * 600},
        {"event_type": "view", "value": 12.5, "quantity": 3, "position": None, "x": True},
        {"event_type": "view", "quantity": 10**25},
        {"event_type": "view", "context": {"q": "a" * 9000}},
    ],
)
def test_event_size_bound_is_never_below_the_exact_size(raw):
    # given
    limit = 8 * 1024
    # when
    small = v.event_size_at_most(raw, limit)
    # then
    assert not small or v.event_size(raw) <= limit


def test_event_size_bound_accepts_a_typical_event():
    # given
    raw = {"event_id": str(uuid.uuid4()), "event_type": "view", "item": "SKU-1", "session_id": "s1"}
    # when / then
    assert v.event_size_at_most(raw, 8 * 1024) is True


@pytest.mark.django_db
@pytest.mark.swappable
def test_import_fast_path_stores_what_the_generic_path_stores(tmp_path, make_item, user_factory):
    # given: the same good rows, once through the fast path and once forced through the generic one
    make_item("K-1")
    make_item("K-2")
    user_factory(username="alice")
    rows = (
        "user_id,item_id,event_type,timestamp,value,session_id\n"
        "alice,K-1,view,1700000000,,\n"
        "alice,K-2,purchase,1700000100,19.905,\n"
        ",K-1,click,1700000200,,sess-9\n"
        ",,search,1700000300,,sess-9\n"
        "alice,K-1,view,1700000000,,\n"  # the same content as line 2: one event
    )
    path = tmp_path / "events.csv"
    path.write_text(rows, encoding="utf-8")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    columns = (
        "event_id",
        "user_id",
        "visitor_id",
        "session_id",
        "item_id",
        "event_type",
        "value",
        "quantity",
        "occurred_at",
        "received_at",
        "placement",
        "context",
        "is_bot",
    )
    # when
    fast = import_events_csv(str(path), now=now)
    stored_fast = sorted(Event.objects.values_list(*columns))
    Event.objects.all().delete()
    from behavior.services.import_chunks import ChunkImporter

    original = ChunkImporter._run_fast
    ChunkImporter._run_fast = lambda self, chunk, batch: chunk  # every row to the generic path
    try:
        generic = import_events_csv(str(path), now=now)
    finally:
        ChunkImporter._run_fast = original
    stored_generic = sorted(Event.objects.values_list(*columns))
    # then
    assert (fast.accepted, fast.duplicates, fast.rejected) == (4, 1, 0)
    assert (generic.accepted, generic.duplicates, generic.rejected) == (4, 1, 0)
    assert stored_fast == stored_generic
    assert Decimal("19.91") in [row[6] for row in stored_fast]


@pytest.mark.django_db
def test_postgres_json_insert_stores_every_column_and_counts_duplicates(product):
    # given
    if connection.vendor != "postgresql":
        pytest.skip("the JSON insert is the Postgres bulk path")
    now = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rec = uuid.uuid4()
    first = (
        uuid.uuid4(),
        None,
        "visitor-1",
        "s-1",
        product.pk,
        "purchase",
        Decimal("12.30"),
        2,
        now,
        now,
        rec,
        "home",
        3,
        {"q": "shoes ☃", "n": [1, 2.5]},
        True,
        "client",
    )
    second = (
        uuid.uuid4(),
        None,
        "visitor-1",
        "",
        None,
        "search",
        None,
        1,
        now,
        now,
        None,
        "",
        None,
        {},
        False,
        "",
    )
    # when
    inserted = storage._insert_postgres_json([first, second])
    again = storage._insert_postgres_json([first])
    # then
    assert (inserted, again) == (2, 0)
    stored = Event.objects.get(event_id=first[0])
    assert [getattr(stored, name) for name in storage.COLUMNS] == list(first)
    assert json.loads(json.dumps(stored.context)) == {"q": "shoes ☃", "n": [1, 2.5]}


@pytest.mark.django_db
def test_defer_indexes_import_restores_every_index_and_foreign_key(tmp_path, product, user_factory):
    # given
    if connection.vendor != "postgresql":
        pytest.skip("--defer-indexes only changes anything on Postgres")
    from behavior.services.deferred_indexes import foreign_key_definitions, secondary_index_definitions

    user_factory(username="alice")
    before = (secondary_index_definitions(), foreign_key_definitions())
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,item_id,event_type,timestamp\nalice,{product.sku},view,1700000000\n")
    # when
    report = import_events_csv(str(path), defer_indexes=True)
    # then
    assert report.accepted == 1
    assert (secondary_index_definitions(), foreign_key_definitions()) == before
    assert {name for name, _ in before[0]} == {
        "behavior_ev_user_time",
        "behavior_ev_anon_visitor_time",
        "behavior_ev_item",
        "behavior_ev_recommendation",
        "behavior_ev_time_brin",
    }
    assert len(before[1]) == 2
