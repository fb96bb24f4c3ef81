"""Celery tasks of the event pipeline (thin wrappers around services)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from behavior.services import retention
from behavior.signals import retention_due

logger = logging.getLogger(__name__)


@shared_task(name="behavior.prune_events", ignore_result=True, soft_time_limit=3600, time_limit=3900)
def prune_events() -> dict[str, int]:
    """Delete personal data past its retention: events (``EVENT_RETENTION_DAYS``), then what
    other apps keep (``behavior.signals.retention_due``: the recommender's impressions and
    "not interested" marks). Idempotent and batched; returns rows deleted per kind.
    """
    now = timezone.now()
    counts = {"events": retention.prune_events(now=now)}
    for receiver, response in retention_due.send_robust(sender=prune_events, now=now):
        if isinstance(response, Exception):
            logger.error("Retention of %r failed: %s", receiver, response, exc_info=response)
        elif isinstance(response, dict):
            counts.update(response)
    logger.info("Retention: deleted %s", counts)
    return counts
