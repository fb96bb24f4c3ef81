"""Retention of the recommender's personal data: impressions and "not interested" marks.

Run daily by ``behavior.prune_events`` (through ``behavior.signals.retention_due``), right
after the events: ``IMPRESSION_RETENTION_DAYS`` and ``NOT_INTERESTED_RETENTION_DAYS`` count
back from the wall clock (retention limits how long personal data is kept, a matter of real
time, like ``EVENT_RETENTION_DAYS``). Impressions on PostgreSQL: whole partitions dropped,
rows deleted only in the one that straddles the cut; otherwise batched deletes, so each
transaction stays short.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from behavior.services import partition_maintenance
from recommendations.conf import recommender_settings
from recommendations.models import NotInterested
from recommendations.services.partitioned import IMPRESSIONS

__all__ = ["prune_serving_data"]


def prune_serving_data(
    sender: Any = None, *, now: datetime | None = None, batch_size: int = 10_000, **_: Any
) -> dict[str, int]:
    """Delete impressions and marks past their retention; returns ``{kind: rows deleted}``.

    A ``retention_due`` receiver (hence ``sender``); a retention of None keeps that kind forever.
    """
    now = now or timezone.now()
    counts = {"impressions": 0, "not_interested": 0}
    if (days := recommender_settings.IMPRESSION_RETENTION_DAYS) is not None:
        counts["impressions"] = partition_maintenance.prune_before(
            IMPRESSIONS, now - timedelta(days=days), batch_size=batch_size
        )
    if (days := recommender_settings.NOT_INTERESTED_RETENTION_DAYS) is not None:
        counts["not_interested"] = partition_maintenance.delete_before(
            NotInterested, "created_at", now - timedelta(days=days), batch_size=batch_size
        )
    return counts
