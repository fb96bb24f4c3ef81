"""Retention of impressions and "not interested" marks; on PostgreSQL, by partition drops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from behavior.services import partition_maintenance, partitions
from recommendations.models import Impression, NotInterested, ShadowScore
from recommendations.services.partitioned import IMPRESSIONS
from recommendations.services.retention import prune_serving_data

pytestmark = pytest.mark.django_db


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _partition_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM recommendations_impression GROUP BY 1")
        return dict(cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")
def test_impressions_past_retention_go_by_partition_and_by_row_only_in_the_straddling_one(user, settings):
    # given: impressions of January, February and March 2020 in their monthly partitions
    partition_maintenance.cover(IMPRESSIONS, _at(2020, 1, 1), _at(2020, 3, 31))
    for moment in (_at(2020, 1, 3), _at(2020, 1, 30), _at(2020, 2, 2), _at(2020, 2, 25), _at(2020, 3, 9)):
        Impression.objects.create(user=user, item_keys=["A"], created_at=moment)
    settings.RECOMMENDER = {**settings.RECOMMENDER, "IMPRESSION_RETENTION_DAYS": 30}
    # when: on 2020-03-16 the cut is 2020-02-15
    counts = prune_serving_data(now=_at(2020, 3, 16), batch_size=1)
    # then: January's partition dropped, one February row deleted, March untouched
    assert counts == {"impressions": 3, "shadow_scores": 0, "not_interested": 0}
    names = {p.name for p in partitions.partitions(IMPRESSIONS)}
    assert "recommendations_impression_p20200101" not in names
    assert _partition_counts() == {
        "recommendations_impression_p20200201": 1,
        "recommendations_impression_p20200301": 1,
    }


def test_impressions_and_marks_past_retention_are_deleted_on_any_database(
    user, settings, shadow_score_factory
):
    # given: an impression, a shadow score and a mark of 400 days ago, and of yesterday
    now = _at(2026, 12, 5)
    settings.RECOMMENDER = {
        **settings.RECOMMENDER,
        "IMPRESSION_RETENTION_DAYS": 365,
        "NOT_INTERESTED_RETENTION_DAYS": 365,
    }
    for days in (400, 1):
        Impression.objects.create(user=user, item_keys=["A"], created_at=now - timedelta(days=days))
        NotInterested.objects.create(user=user, item_key=f"K{days}", created_at=now - timedelta(days=days))
        shadow_score_factory(user=user, created_at=now - timedelta(days=days))
    # when
    counts = prune_serving_data(now=now, batch_size=1)
    # then
    assert counts == {"impressions": 1, "shadow_scores": 1, "not_interested": 1}
    assert ShadowScore.objects.get().created_at == now - timedelta(days=1)
    assert list(NotInterested.objects.values_list("item_key", flat=True)) == ["K1"]
    assert Impression.objects.get().created_at == now - timedelta(days=1)
