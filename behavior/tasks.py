"""Celery tasks of the event pipeline (thin wrappers around services)."""

from __future__ import annotations

from celery import shared_task

from behavior.services import ingest as services


@shared_task(name="behavior.prune_events", ignore_result=True, soft_time_limit=3600, time_limit=3900)
def prune_events() -> int:
    """Delete events older than ``EVENT_RETENTION_DAYS`` (idempotent, batched)."""
    return services.prune_events()
