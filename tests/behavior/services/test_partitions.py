"""The read side of the time partitions: intervals, gaps, and rows that no partition holds.

The interval arithmetic runs everywhere; the rest needs PostgreSQL (SQLite keeps the plain
table). Each test's partitions are rolled back with its transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from behavior.items import item_key
from behavior.services import ingest as services
from behavior.services import partitions
from behavior.services.partitions import EVENTS, Partition

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "moment", "expected"),
    [
        ("month", _at(2026, 12, 31, 23, 59), (_at(2026, 12, 1), _at(2027, 1, 1))),
        ("month", _at(2027, 2, 1), (_at(2027, 2, 1), _at(2027, 3, 1))),
        ("week", _at(2026, 12, 5, 14), (_at(2026, 11, 30), _at(2026, 12, 7))),  # Saturday -> Monday
        ("day", _at(2026, 12, 5, 14), (_at(2026, 12, 5), _at(2026, 12, 6))),
    ],
)
def test_bucket_is_the_aligned_utc_interval(interval, moment, expected):
    # when / then
    assert partitions.bucket(moment, interval) == expected


def test_bucket_refuses_an_unknown_interval():
    # when / then
    with pytest.raises(ValueError, match="PARTITION_INTERVAL"):
        partitions.bucket(_at(2026, 1, 1), "year")


def test_gaps_are_the_parts_no_partition_holds():
    # given: a legacy partition up to 2027-01-01, one for February, and the DEFAULT partition
    existing = [
        Partition("legacy", None, _at(2027, 1, 1)),
        Partition("feb", _at(2027, 2, 1), _at(2027, 3, 1)),
        Partition("default", None, None, is_default=True),
    ]
    # when / then
    assert partitions.gaps(_at(2026, 12, 28), _at(2027, 1, 4), existing) == [
        (_at(2027, 1, 1), _at(2027, 1, 4))
    ]
    assert partitions.gaps(_at(2027, 1, 1), _at(2027, 4, 1), existing) == [
        (_at(2027, 1, 1), _at(2027, 2, 1)),
        (_at(2027, 3, 1), _at(2027, 4, 1)),
    ]
    assert partitions.gaps(_at(2026, 12, 1), _at(2027, 1, 1), existing) == []


# --- PostgreSQL --------------------------------------------------------------------------------


def _store(item, *moments: datetime, now: datetime | None = None) -> services.IngestResult:
    raws = [{"event_type": "view", "item": item_key(item), "occurred_at": m.isoformat()} for m in moments]
    return services.ingest_events(raws, visitor_id="visitor-1", now=now or _at(2026, 12, 5), historical=True)


def _rows_by_partition() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM behavior_event GROUP BY 1")
        return dict(cursor.fetchall())


def _bounds() -> list[tuple[datetime | None, datetime | None]]:
    return [(p.lower, p.upper) for p in partitions.partitions(EVENTS) if not p.is_default]


@postgres_only
@pytest.mark.django_db
def test_an_event_without_a_partition_goes_to_default_with_a_warning_and_a_metric(item, caplog):
    # given: no partition holds March 2020 (the test database has partitions from now on)
    before = REGISTRY.get_sample_value("behavior_partition_misses_total", {"table": "events"}) or 0
    # when
    with caplog.at_level(logging.WARNING, logger="behavior.services.partitions"):
        result = _store(item, _at(2020, 3, 10, 8), _at(2020, 3, 11, 8))
    # then: stored (no error for the shopper), in the DEFAULT partition, and said so
    assert (result.accepted, result.rejected) == (2, [])
    assert _rows_by_partition() == {"behavior_event_default": 2}
    assert "2 events have no partition for their time" in caplog.text
    after = REGISTRY.get_sample_value("behavior_partition_misses_total", {"table": "events"})
    assert after == before + 2
