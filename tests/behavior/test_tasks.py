"""The ``behavior.prune_events`` and ``behavior.maintain_partitions`` Celery tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from behavior.items import item_key
from behavior.models import Event
from behavior.services import ingest as services
from behavior.tasks import maintain_partitions, prune_events

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]


def test_prune_events_task_deletes_events_past_the_retention(item):
    # given: default retention is 730 days
    now = timezone.now()
    services.ingest_events(
        [
            {
                "event_type": "view",
                "item": item_key(item),
                "occurred_at": (now - timedelta(days=800)).isoformat(),
            },
            {
                "event_type": "view",
                "item": item_key(item),
                "occurred_at": (now - timedelta(days=10)).isoformat(),
            },
        ],
        visitor_id="visitor-0001",
        now=now,
    )
    # when
    deleted = prune_events.delay().get()
    # then
    assert prune_events.name == "behavior.prune_events"
    assert deleted["events"] == 1
    assert Event.objects.count() == 1


def test_maintain_partitions_task_moves_rows_out_of_the_default_partition(item):
    # given: an event of March 2020, a month no partition holds (PostgreSQL: it is in DEFAULT)
    services.ingest_events(
        [{"event_type": "view", "item": item_key(item), "occurred_at": "2020-03-10T08:00:00Z"}],
        visitor_id="visitor-0001",
        historical=True,
    )
    # when
    summary = maintain_partitions.delay().get()
    # then
    assert maintain_partitions.name == "behavior.maintain_partitions"
    assert Event.objects.count() == 1
    if connection.vendor != "postgresql":
        assert summary == {}  # SQLite keeps the plain table
        return
    assert summary["events"]["moved"] == 1
    assert "behavior_event_p20200301" in summary["events"]["created"]
    assert summary["impressions"] == {"created": [], "moved": 0, "failed": []}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM behavior_event")
        assert cursor.fetchall() == [("behavior_event_p20200301",)]
