"""The impressions table partitioned like the events (PostgreSQL): a row without a partition
is written to DEFAULT, said, and moved into its partition by the maintenance."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from behavior.services import partition_maintenance
from recommendations.models import Impression
from recommendations.services.partitioned import IMPRESSIONS
from recommendations.services.serving import impressions

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]


def _where() -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM recommendations_impression GROUP BY 1")
        return sorted(cursor.fetchall())


def _row(created_at: str) -> str:
    return json.dumps(
        {
            "recommendation_id": str(uuid.uuid4()),
            "user_id": None,
            "visitor_id": "v-1",
            "placement": "home",
            "model_version": None,
            "item_keys": ["A"],
            "source": "popular",
            "created_at": created_at,
        }
    )


def test_an_impression_without_a_partition_is_written_to_default_said_and_later_moved(caplog):
    # given: impressions of March 2020, a month no partition holds
    before = REGISTRY.get_sample_value("behavior_partition_misses_total", {"table": "impressions"}) or 0
    # when
    with caplog.at_level(logging.WARNING, logger="behavior.services.partitions"):
        written = impressions.write_taken(
            [_row("2020-03-10T08:00:00+00:00"), _row("2020-03-12T08:00:00+00:00")]
        )
    # then: written, to DEFAULT, with a warning and the metric
    assert written == 2
    assert _where() == [("recommendations_impression_default", 2)]
    assert "2 impressions have no partition for their time" in caplog.text
    after = REGISTRY.get_sample_value("behavior_partition_misses_total", {"table": "impressions"})
    assert after == before + 2
    # and the maintenance creates March's partition and moves them there
    report = partition_maintenance.maintain(IMPRESSIONS)
    assert report.moved == 2
    assert _where() == [("recommendations_impression_p20200301", 2)]
    assert Impression.objects.count() == 2
