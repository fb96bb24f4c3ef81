"""Exactly-once for client event ids: re-sends without a time, reused ids, the window of ids.

On PostgreSQL the events table is unique on (event_id, occurred_at) only; the window of recent
ids keeps event_id alone unique. On SQLite event_id is unique by itself: the same answers.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections

from behavior.items import item_key
from behavior.models import Event, RecentEventId
from behavior.services import event_ids
from behavior.services import ingest as services

pytestmark = [pytest.mark.swappable]

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
SIZES = [3, 30, 2500]  # ORM path, JSON path, COPY path (Postgres)
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the window is PostgreSQL's")


def _events(item, size: int, **extra) -> list[dict]:
    return [
        {"event_id": str(uuid.uuid4()), "event_type": "view", "item": item_key(item), **extra}
        for _ in range(size)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("size", SIZES)
def test_a_resend_without_a_time_is_a_duplicate_although_the_server_stamps_a_new_one(item, size):
    # given: events whose time the server chose (no occurred_at)
    raws = _events(item, size)
    services.ingest_events(raws, visitor_id="v-1", now=NOW)
    # when: re-sent a minute later (the server's time is another one now)
    again = services.ingest_events(raws, visitor_id="v-1", now=NOW + timedelta(minutes=1))
    # then
    assert (again.accepted, again.duplicates, again.rejected) == (0, size, [])
    assert Event.objects.count() == size
    assert set(Event.objects.values_list("occurred_at", flat=True)) == {NOW}


@pytest.mark.django_db
@pytest.mark.parametrize("size", SIZES)
def test_an_id_reused_with_another_time_is_rejected_and_not_stored(item, size):
    # given: events stored with their times
    raws = _events(item, size, occurred_at=(NOW - timedelta(hours=1)).isoformat())
    services.ingest_events(raws, visitor_id="v-1", now=NOW)
    # when: the first one comes back with another time, the others unchanged
    moved = {**raws[0], "occurred_at": (NOW - timedelta(hours=2)).isoformat()}
    result = services.ingest_events([moved, *raws[1:]], visitor_id="v-1", now=NOW)
    # then: the reused id is rejected by index, the unchanged ones are duplicates
    assert (result.accepted, result.duplicates) == (0, size - 1)
    assert [entry["index"] for entry in result.rejected] == [0]
    assert services.is_reused_id(result.rejected[0])
    assert Event.objects.count() == size
    assert Event.objects.get(event_id=raws[0]["event_id"]).occurred_at == NOW - timedelta(hours=1)


@pytest.mark.django_db
def test_an_unchanged_resend_without_a_time_is_never_called_reused(item):
    # given: an event stored with the server's time, then re-sent naming no time
    raws = _events(item, 1)
    services.ingest_events(raws, visitor_id="v-1", now=NOW)
    # when
    again = services.ingest_events(raws, visitor_id="v-1", now=NOW + timedelta(hours=5))
    # then
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, [])


@postgres_only
@pytest.mark.django_db
@pytest.mark.parametrize("size", SIZES)
def test_past_the_window_the_pair_of_id_and_time_still_identifies_a_resend(item, size):
    # given: events stored with their times, and the window of ids forgotten since
    raws = _events(item, size, occurred_at=(NOW - timedelta(hours=1)).isoformat())
    services.ingest_events(raws, visitor_id="v-1", now=NOW)
    later = NOW + timedelta(days=30)
    forgotten = event_ids.prune_window(now=later)
    # when: re-sent unchanged a month later
    again = services.ingest_events(raws, visitor_id="v-1", now=later, historical=True)
    # then: still stored once (the unique (event_id, occurred_at) of the partitioned table)
    assert forgotten == size
    assert (again.accepted, again.duplicates, again.rejected) == (0, size, [])
    assert Event.objects.count() == size


@postgres_only
@pytest.mark.django_db
def test_past_the_window_a_resend_without_a_time_is_a_new_event(item):
    # given: an event stored with the server's time, its id forgotten after the window
    raws = _events(item, 1)
    services.ingest_events(raws, visitor_id="v-1", now=NOW)
    event_ids.prune_window(now=NOW + timedelta(days=3))
    # when: the client re-sends it, still naming no time (the documented limit of the window)
    again = services.ingest_events(raws, visitor_id="v-1", now=NOW + timedelta(days=3))
    # then
    assert again.accepted == 1
    assert Event.objects.filter(event_id=raws[0]["event_id"]).count() == 2


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [5, 30])
def test_concurrent_resends_without_a_time_are_stored_once(make_item, size):
    # given: two writers that send the same batch at once, each stamping its own time
    item = make_item()
    raws = _events(item, size)
    barrier = threading.Barrier(2)
    results: list[services.IngestResult] = []

    def send(offset: int) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(
                services.ingest_events(raws, visitor_id="v-1", now=NOW + timedelta(seconds=offset))
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(offset,)) for offset in (0, 1)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then: every event once, counted once as new and once as a duplicate
    assert len(results) == 2
    assert sum(r.accepted for r in results) == size
    assert sum(r.duplicates for r in results) == size
    assert Event.objects.count() == size


@pytest.mark.django_db
def test_prune_window_forgets_only_ids_older_than_the_window():
    # given: ids received 3 days and 1 day ago (the window is 2 days)
    old, recent = uuid.uuid4(), uuid.uuid4()
    RecentEventId.objects.create(event_id=old, occurred_at=NOW, received_at=NOW - timedelta(days=3))
    RecentEventId.objects.create(event_id=recent, occurred_at=NOW, received_at=NOW - timedelta(days=1))
    # when
    forgotten = event_ids.prune_window(now=NOW, batch_size=1)
    # then
    assert forgotten == 1
    assert list(RecentEventId.objects.values_list("event_id", flat=True)) == [recent]
