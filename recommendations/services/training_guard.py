"""One training run at a time, and the liveness of the running one.

One run at a time
    On Postgres a session-level ``pg_try_advisory_lock`` is taken on a dedicated
    connection held for the whole run: it survives hours of training and vanishes with
    the process if the worker dies. Elsewhere (SQLite) a lease key in Django's cache
    (shared Redis in production; ``cache.add`` is atomic) is renewed by the heartbeat
    thread. A call that cannot take the lock returns at once with a ``skipped`` run whose
    error reads "another training is running" (a run row rather than an exception, so
    the skip is visible in the admin and the task does not retry).

Liveness
    A heartbeat thread stamps ``heartbeat_at`` every ``TRAINING_HEARTBEAT_SECONDS``; at
    the start of the next run, ``running`` runs whose heartbeat is older than
    ``TRAINING_STALE_MINUTES`` are marked ``abandoned``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.models import TrainingRun
from recommendations.runtime.locks import RunLock, run_lock

logger = logging.getLogger(__name__)

TRAINING_LOCK_NAME = "recommendations.train_model"


@contextmanager
def training_lock() -> Iterator[RunLock | None]:
    """Hold the one-training-at-a-time lock; yields None when another training holds it.

    The cache lease (non-Postgres databases) lives as long as a run may go without a
    heartbeat before it is declared abandoned.
    """
    lease_seconds = int(recommender_settings.TRAINING_STALE_MINUTES * 60)
    with run_lock(TRAINING_LOCK_NAME, lease_seconds=lease_seconds) as lock:
        yield lock


class Heartbeat:
    """A daemon thread stamping the run's ``heartbeat_at`` (and renewing the lease) until stopped."""

    def __init__(self, run: TrainingRun, lock: Any) -> None:
        self.run_id = run.pk
        self.lock = lock
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"training-heartbeat-{run.pk}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _beat(self) -> None:
        interval = float(recommender_settings.TRAINING_HEARTBEAT_SECONDS)
        try:
            while not self.stopped.wait(interval):
                try:
                    TrainingRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
                    self.lock.renew()
                except Exception:  # a missed beat is not fatal; a stale run is detected later
                    logger.warning("training heartbeat failed", exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections


def abandon_stale_runs() -> int:
    """Mark ``running`` runs with a heartbeat older than ``TRAINING_STALE_MINUTES`` as abandoned."""
    cutoff = timezone.now() - timedelta(minutes=recommender_settings.TRAINING_STALE_MINUTES)
    count = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff).update(
        status=TrainingRun.Status.ABANDONED,
        finished_at=timezone.now(),
        error=f"no heartbeat for more than {recommender_settings.TRAINING_STALE_MINUTES} minutes: "
        "the worker died or was killed",
    )
    if count:
        logger.warning("marked %d stale training run(s) as abandoned", count)
    return count
