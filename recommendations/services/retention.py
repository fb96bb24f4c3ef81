"""Retention of the recommender's personal data: impressions and "not interested" marks.

Run daily by ``behavior.prune_events`` (through ``behavior.signals.retention_due``), right
after the events: ``IMPRESSION_RETENTION_DAYS`` and ``NOT_INTERESTED_RETENTION_DAYS`` count
back from the wall clock (retention limits how long personal data is kept, a matter of real
time, like ``EVENT_RETENTION_DAYS``). Batched, so each transaction stays short.

Impressions of an experiment are kept until it has ended and its results are kept on it
(``experiments.lifecycle.finalize``, run here first): its results never change because
retention ran.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.models import Experiment, Impression, NotInterested
from recommendations.services.experiments.lifecycle import finalize

__all__ = ["prune_serving_data"]


def _prunable(model: Any) -> Any:
    """The rows retention may delete: not the impressions of an experiment without final results."""
    if model is Impression:
        return Impression.objects.filter(
            Q(experiment__isnull=True) | Q(experiment__finalized_at__isnull=False)
        )
    return model.objects.all()


def _prune(model: Any, cutoff: datetime, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(
            _prunable(model)
            .filter(created_at__lt=cutoff)
            .order_by()
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        with transaction.atomic():
            count, _ = model.objects.filter(pk__in=ids).delete()
        deleted += count


def prune_serving_data(
    sender: Any = None, *, now: datetime | None = None, batch_size: int = 10_000, **_: Any
) -> dict[str, int]:
    """Delete impressions and marks past their retention; returns ``{kind: rows deleted}``.

    A ``retention_due`` receiver (hence ``sender``); a retention of None keeps that kind forever.
    """
    now = now or timezone.now()
    for experiment in Experiment.objects.filter(ends_at__lte=now, final_results__isnull=True):
        finalize(experiment, now=now)
    counts: dict[str, int] = {}
    for kind, model, days in (
        ("impressions", Impression, recommender_settings.IMPRESSION_RETENTION_DAYS),
        ("not_interested", NotInterested, recommender_settings.NOT_INTERESTED_RETENTION_DAYS),
    ):
        counts[kind] = 0 if days is None else _prune(model, now - timedelta(days=days), batch_size)
    return counts
