"""Retention of the recommender's personal data: impressions (with shadow scores) and "not interested" marks.

Run daily by ``behavior.prune_events`` (through ``behavior.signals.retention_due``), right
after the events: ``IMPRESSION_RETENTION_DAYS`` and ``NOT_INTERESTED_RETENTION_DAYS`` count
back from the wall clock (retention limits how long personal data is kept, a matter of real
time, like ``EVENT_RETENTION_DAYS``). Impressions on PostgreSQL: whole partitions dropped,
rows deleted only in the one that straddles the cut; otherwise batched deletes, so each
transaction stays short.

Impressions of an experiment are kept until it has ended and its results are kept on it
(``experiments.lifecycle.finalize``, run here first): its results never change because
retention ran. Partitions hold every placement's impressions, so while an experiment without
final results started before the retention cut, whole partitions are dropped only up to its
start; between its start and the cut, rows outside such experiments are deleted in batches.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min, Q
from django.utils import timezone

from behavior.services import partition_maintenance
from recommendations.conf import recommender_settings
from recommendations.models import Experiment, Impression, NotInterested, ShadowScore
from recommendations.services.experiments.lifecycle import finalize
from recommendations.services.partitioned import IMPRESSIONS

__all__ = ["prune_serving_data"]


def _oldest_open_experiment(cutoff: datetime) -> datetime | None:
    """The start of the oldest experiment without final results that started before ``cutoff``."""
    start: datetime | None = Experiment.objects.filter(
        finalized_at__isnull=True, starts_at__lt=cutoff
    ).aggregate(start=Min("starts_at"))["start"]
    return start


def _prune_impressions(cutoff: datetime, batch_size: int) -> int:
    """Impressions before ``cutoff``, except those of experiments still without final results."""
    kept_from = _oldest_open_experiment(cutoff)
    deleted = partition_maintenance.prune_before(IMPRESSIONS, kept_from or cutoff, batch_size=batch_size)
    if kept_from is None:
        return deleted
    outside_open = Impression.objects.filter(
        Q(experiment__isnull=True) | Q(experiment__finalized_at__isnull=False), created_at__gte=kept_from
    )
    deleted += partition_maintenance.delete_before(
        Impression, "created_at", cutoff, batch_size=batch_size, among=outside_open
    )
    return deleted


def prune_serving_data(
    sender: Any = None, *, now: datetime | None = None, batch_size: int = 10_000, **_: Any
) -> dict[str, int]:
    """Delete impressions and marks past their retention; returns ``{kind: rows deleted}``.

    A ``retention_due`` receiver (hence ``sender``); a retention of None keeps that kind forever.
    """
    now = now or timezone.now()
    for experiment in Experiment.objects.filter(ends_at__lte=now, final_results__isnull=True):
        finalize(experiment, now=now)
    counts = {"impressions": 0, "shadow_scores": 0, "not_interested": 0}
    if (days := recommender_settings.IMPRESSION_RETENTION_DAYS) is not None:
        counts["impressions"] = _prune_impressions(now - timedelta(days=days), batch_size)
        # a shadow candidate's lists for served requests: kept as long as the impressions
        counts["shadow_scores"] = partition_maintenance.delete_before(
            ShadowScore, "created_at", now - timedelta(days=days), batch_size=batch_size
        )
    if (days := recommender_settings.NOT_INTERESTED_RETENTION_DAYS) is not None:
        counts["not_interested"] = partition_maintenance.delete_before(
            NotInterested, "created_at", now - timedelta(days=days), batch_size=batch_size
        )
    return counts
