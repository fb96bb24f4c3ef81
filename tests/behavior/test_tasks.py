"""The ``behavior.prune_events`` Celery task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from behavior.items import item_key
from behavior.models import Event
from behavior.services import ingest as services
from behavior.tasks import prune_events

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
