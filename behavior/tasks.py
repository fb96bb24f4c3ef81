"""Celery tasks of the event pipeline (thin wrappers around services)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from behavior.services import event_ids, partition_maintenance, retention
from behavior.signals import retention_due

logger = logging.getLogger(__name__)


@shared_task(name="behavior.prune_events", ignore_result=True, soft_time_limit=3600, time_limit=3900)
def prune_events() -> dict[str, int]:
    """Delete personal data past its retention: events (``EVENT_RETENTION_DAYS``), then what
    other apps keep (``behavior.signals.retention_due``: the recommender's impressions and
    "not interested" marks), and forget client event ids older than ``EVENT_ID_WINDOW_DAYS``.
    Idempotent and batched; returns rows deleted per kind.
    """
    now = timezone.now()
    counts = {"events": retention.prune_events(now=now)}
    for receiver, response in retention_due.send_robust(sender=prune_events, now=now):
        if isinstance(response, Exception):
            logger.error("Retention of %r failed: %s", receiver, response, exc_info=response)
        elif isinstance(response, dict):
            counts.update(response)
    counts["event_ids"] = event_ids.prune_window(now=now)
    logger.info("Retention: deleted %s", counts)
    return counts


@shared_task(name="behavior.maintain_partitions", ignore_result=True, soft_time_limit=3600, time_limit=3900)
def maintain_partitions() -> dict[str, dict[str, object]]:
    """PostgreSQL: create the partitions of events and impressions ahead of time and move rows
    that landed in a DEFAULT partition into theirs (``behavior.services.partition_maintenance``).
    Idempotent; a no-op on SQLite. Returns ``{table: {"created": [...], "moved": n, "failed": [...]}}``.
    """
    reports = partition_maintenance.maintain_all(now=timezone.now())
    summary = {label: vars(report) for label, report in reports.items()}
    logger.info("Partition maintenance: %s", summary)
    return summary
