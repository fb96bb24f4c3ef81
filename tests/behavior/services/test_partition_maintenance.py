"""Creating, filling and dropping time partitions (PostgreSQL): ahead of time, rows moved out of
DEFAULT, retention by partition drops, an import's partitions. Each test's partitions are rolled
back with its transaction.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from behavior.items import item_key_field
from behavior.models import Event
from behavior.services import partition_maintenance, partitions
from behavior.services.importing import import_events_csv
from behavior.services.partitions import EVENTS
from behavior.services.retention import prune_events
from tests.behavior.services.test_partitions import _at, _bounds, _rows_by_partition, _store, postgres_only

pytestmark = [postgres_only, pytest.mark.django_db]


def test_maintain_creates_the_current_partition_and_those_ahead_once():
    # given: a month no partition holds yet
    now = _at(2031, 6, 15, 12)
    # when
    first = partition_maintenance.maintain(EVENTS, now=now)
    second = partition_maintenance.maintain(EVENTS, now=now)
    # then: June and the three months after it (PARTITIONS_AHEAD), created by the first run only
    assert first.created == [f"behavior_event_p2031{month:02d}01" for month in (6, 7, 8, 9)]
    assert (first.moved, first.failed) == (0, [])
    assert second.created == []
    assert [b for b in _bounds() if b[0] and b[0].year == 2031] == [
        (_at(2031, 6, 1), _at(2031, 7, 1)),
        (_at(2031, 7, 1), _at(2031, 8, 1)),
        (_at(2031, 8, 1), _at(2031, 9, 1)),
        (_at(2031, 9, 1), _at(2031, 10, 1)),
    ]


def test_rows_in_default_never_block_creating_their_partition(item):
    # given: two events of March 2020 in the DEFAULT partition, one of April
    _store(item, _at(2020, 3, 10, 8), _at(2020, 3, 31, 23, 59), _at(2020, 4, 2))
    ids = set(Event.objects.values_list("event_id", flat=True))
    # PostgreSQL itself refuses the partition while DEFAULT holds rows that belong to it
    with (
        pytest.raises(DatabaseError, match="default partition"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "CREATE TABLE behavior_event_march PARTITION OF behavior_event "
            "FOR VALUES FROM ('2020-03-01') TO ('2020-04-01')"
        )
    # when
    report = partition_maintenance.maintain(EVENTS, now=_at(2026, 12, 5))
    # then: their partitions were created and the rows moved into them, none lost
    assert {"behavior_event_p20200301", "behavior_event_p20200401"} <= set(report.created)
    assert report.moved == 3
    assert _rows_by_partition() == {"behavior_event_p20200301": 2, "behavior_event_p20200401": 1}
    assert set(Event.objects.values_list("event_id", flat=True)) == ids
    # and the moved rows keep every index and key of the table (a re-send is still a duplicate)
    again = _store(item, _at(2020, 3, 10, 8))
    assert (again.accepted, again.duplicates) == (1, 0)  # a new event id: a new event


def test_retention_drops_whole_partitions_and_deletes_rows_only_in_the_straddling_one(item):
    # given: events in January, February and March 2020, each month its partition
    partition_maintenance.cover(EVENTS, _at(2020, 1, 1), _at(2020, 3, 31))
    _store(item, _at(2020, 1, 5), _at(2020, 1, 20), _at(2020, 2, 10), _at(2020, 2, 20), _at(2020, 3, 5))
    # when: the cut is 2020-02-15 (retention 30 days on 2020-03-16)
    deleted = prune_events(retention_days=30, now=_at(2020, 3, 16), batch_size=1)
    # then: January's partition is gone, February kept its rows after the cut, March untouched
    assert deleted == 3
    names = {p.name for p in partitions.partitions(EVENTS)}
    assert "behavior_event_p20200101" not in names
    assert {"behavior_event_p20200201", "behavior_event_p20200301"} <= names
    assert _rows_by_partition() == {"behavior_event_p20200201": 1, "behavior_event_p20200301": 1}
    assert list(Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True)) == [
        _at(2020, 2, 20),
        _at(2020, 3, 5),
    ]


def test_a_retention_shorter_than_a_partition_deletes_rows_in_it(item):
    # given: one monthly partition with events 10, 5 and 1 day(s) before "now"
    now = _at(2020, 3, 25, 12)
    partition_maintenance.cover(EVENTS, _at(2020, 3, 1), _at(2020, 3, 31))
    _store(item, now - timedelta(days=10), now - timedelta(days=5), now - timedelta(days=1), now=now)
    # when: retention of 3 days, far less than the month of a partition
    with override_settings(RECOMMENDER={"EVENT_RETENTION_DAYS": 3, "ITEM_KEY_FIELD": item_key_field()}):
        deleted = prune_events(now=now)
    # then: only the rows before the cut went; the partition stays
    assert deleted == 2
    assert _rows_by_partition() == {"behavior_event_p20200301": 1}


def test_week_partitions_fill_the_gap_after_a_month_partition():
    # given: a monthly partition of March 2020, then the interval becomes a week
    partition_maintenance.cover(EVENTS, _at(2020, 3, 1), _at(2020, 3, 31))
    with override_settings(RECOMMENDER={"PARTITION_INTERVAL": "week", "PARTITIONS_AHEAD": 1}):
        # when: maintained on Tuesday 2020-03-31 (its week began on Monday the 30th)
        report = partition_maintenance.maintain(EVENTS, now=_at(2020, 3, 31, 9))
    # then: the rest of that week after March, then the next week
    assert report.created == ["behavior_event_p20200401", "behavior_event_p20200406"]
    assert [b for b in _bounds() if b[0] and b[0].year == 2020] == [
        (_at(2020, 3, 1), _at(2020, 4, 1)),
        (_at(2020, 4, 1), _at(2020, 4, 6)),
        (_at(2020, 4, 6), _at(2020, 4, 13)),
    ]


def test_an_import_creates_the_partitions_of_a_historical_log(tmp_path, make_item):
    # given: a log of May and June 2019
    make_item("K-1")
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp,session_id\n"
        f",K-1,view,{int(_at(2019, 5, 3).timestamp())},s-1\n"
        f",K-1,view,{int(_at(2019, 6, 30, 23).timestamp())},s-1\n",
        encoding="utf-8",
    )
    # when
    report = import_events_csv(str(path), writers=0)
    # then: the rows went to partitions made for them, none to DEFAULT
    assert report.accepted == 2
    assert _rows_by_partition() == {"behavior_event_p20190501": 1, "behavior_event_p20190601": 1}
