"""Migrating an existing installation (``behavior.migrations._partitioning``, migrations 0007 of
both apps): a populated plain events table (and impressions table) becomes partitioned without
losing a row, while events keep coming in (PostgreSQL).

The migrations run for real (``MigrationExecutor``): back to the plain tables of 0006, rows
written there, forward again with a writer thread ingesting all along.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

from behavior.items import item_key
from behavior.migrations._partitioning import legacy_bound
from behavior.models import Event
from behavior.services import ingest as services
from behavior.services import partition_maintenance, partitions

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitioning is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]

PLAIN = [("behavior", "0006_translatable_names"), ("recommendations", "0006_list_refreshes")]


def _migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    partitions.forget_layouts()


def _query(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


class Writer(threading.Thread):
    """Ingests batches of 25 events with client ids until stopped; keeps what it was told."""

    def __init__(self, item) -> None:
        super().__init__(daemon=True)
        self.item_key = item_key(item)
        self.stop = threading.Event()
        self.accepted = 0
        self.batches = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = [
                    {"event_id": str(uuid.uuid4()), "event_type": "view", "item": self.item_key}
                    for _ in range(25)
                ]
                try:
                    self.accepted += services.ingest_events(batch, visitor_id="writer").accepted
                    self.batches += 1
                except BaseException as exc:  # every failure counts: ingest must keep running
                    self.errors.append(exc)
        finally:
            connections.close_all()


def test_a_populated_table_is_partitioned_without_losing_a_row_while_ingest_runs(make_item, user):
    # given: the plain tables of 0006 holding two years of events and a year of impressions
    item = make_item()
    try:
        _migrate(PLAIN)
        assert _query("SELECT relkind FROM pg_class WHERE relname = 'behavior_event'") == [("r",)]
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO behavior_event (event_id, user_id, item_id, visitor_id, session_id, event_type, "
                "quantity, occurred_at, received_at, placement, context, is_bot, origin) "
                "SELECT gen_random_uuid(), CASE WHEN i %% 2 = 0 THEN %s END, %s, 'v' || i, '', 'view', 1, "
                "now() - i * interval '1 hour', now(), '', '{}', false, '' FROM generate_series(1, 17520) i",
                [user.pk, item.pk],
            )
            cursor.execute(
                "INSERT INTO recommendations_impression (recommendation_id, visitor_id, placement, "
                "item_keys, source, created_at) SELECT gen_random_uuid(), 'v', 'home', '[]', 'popular', "
                "now() - i * interval '1 day' FROM generate_series(1, 365) i"
            )
        events_before = set(_query("SELECT id, event_id, occurred_at FROM behavior_event"))
        impressions_before = set(
            _query("SELECT id, recommendation_id, created_at FROM recommendations_impression")
        )
        old_id, old_time = _query("SELECT event_id, occurred_at FROM behavior_event ORDER BY id LIMIT 1")[0]
        writer = Writer(item)
        # when: migrated forward while the writer ingests
        writer.start()
        try:
            _migrate()
        finally:
            writer.stop.set()
            writer.join(timeout=60)
        # then: partitioned, every old row in the legacy partition, every acknowledged event stored
        assert writer.errors == []
        assert writer.batches > 0
        assert _query("SELECT relkind FROM pg_class WHERE relname = 'behavior_event'") == [("p",)]
        assert events_before <= set(_query("SELECT id, event_id, occurred_at FROM behavior_event_legacy"))
        assert _query("SELECT count(*) FROM behavior_event WHERE visitor_id = 'writer'") == [
            (writer.accepted,)
        ]
        assert _query("SELECT count(*) FROM behavior_event") == [(len(events_before) + writer.accepted,)]
        assert impressions_before == set(
            _query("SELECT id, recommendation_id, created_at FROM recommendations_impression_legacy")
        )
        bound = legacy_bound()
        assert partitions.partitions(partitions.EVENTS)[0] == partitions.Partition(
            "behavior_event_legacy", None, bound
        )
        # and the table works on: new ids follow the old ones, an old event re-sent is a duplicate
        new = services.ingest_events(
            [{"event_type": "view", "item": item_key(item)}], visitor_id="after", return_events=True
        ).events[0]
        assert new.pk > max(row[0] for row in events_before)
        resent = services.ingest_events(
            [
                {
                    "event_id": str(old_id),
                    "event_type": "view",
                    "item": item_key(item),
                    "occurred_at": old_time.isoformat(),
                }
            ],
            visitor_id="v-1",
            now=datetime.now(UTC),
            historical=True,
        )
        assert (resent.accepted, resent.duplicates) == (0, 1)
        assert Event.objects.filter(event_id=old_id).count() == 1
    finally:
        # a clean layout for the tests after this one: empty tables get no legacy partition
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE behavior_event, recommendations_impression")
        _migrate(PLAIN)
        _migrate()
        partition_maintenance.maintain_all()


def test_migrating_back_keeps_every_row_in_a_plain_table(make_item):
    # given: events in partitions of two months and in the DEFAULT partition
    item = make_item()
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 28, tzinfo=UTC)
    partition_maintenance.cover(partitions.EVENTS, start, end)
    stamps = ["2020-01-10T00:00:00Z", "2020-02-10T00:00:00Z", "2019-06-01T00:00:00Z"]
    services.ingest_events(
        [{"event_type": "view", "item": item_key(item), "occurred_at": s} for s in stamps],
        visitor_id="v-1",
        historical=True,
    )
    before = set(_query("SELECT id, event_id, occurred_at FROM behavior_event"))
    try:
        # when
        _migrate(PLAIN)
        # then
        assert _query("SELECT relkind FROM pg_class WHERE relname = 'behavior_event'") == [("r",)]
        assert set(_query("SELECT id, event_id, occurred_at FROM behavior_event")) == before
    finally:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE behavior_event, recommendations_impression")
        _migrate()
        partition_maintenance.maintain_all()
