"""How long events are kept: the retention cut-off and the pruning of older events."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from behavior.conf import behavior_settings
from behavior.models import Event
from behavior.services import partition_maintenance, partitions


def retention_cutoff(*, retention_days: int | None = None, now: datetime | None = None) -> datetime | None:
    """Events that occurred before this instant are past retention; None when kept forever.

    ``retention_days`` defaults to ``EVENT_RETENTION_DAYS``. The wall clock on purpose (not the
    newest stored event, which the recommender's windows count back from): retention limits
    how long personal data is kept, which is a matter of real time.
    """
    days = behavior_settings.EVENT_RETENTION_DAYS if retention_days is None else retention_days
    if days is None:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def events_past_retention(*, now: datetime | None = None) -> int:
    """How many stored events the next ``prune_events`` deletes (0 when events are kept forever)."""
    cutoff = retention_cutoff(now=now)
    return 0 if cutoff is None else Event.objects.filter(occurred_at__lt=cutoff).count()


def prune_events(
    *, retention_days: int | None = None, batch_size: int = 10_000, now: datetime | None = None
) -> int:
    """Delete events that occurred more than ``retention_days`` ago; return how many.

    ``retention_days`` defaults to ``EVENT_RETENTION_DAYS``; ``None`` there means keep
    forever. On PostgreSQL the partitions that lie wholly before the cut are dropped (their
    rows counted by the planner's estimate when large), and rows are deleted only in the one
    that straddles it (and the DEFAULT partition); elsewhere rows are deleted in batches,
    which keep each transaction (and the locks it holds) short.
    """
    cutoff = retention_cutoff(retention_days=retention_days, now=now)
    if cutoff is None:
        return 0
    return partition_maintenance.prune_before(partitions.EVENTS, cutoff, batch_size=batch_size)
