"""Which served lists a shadow candidate scores, decided on the request path at almost no cost.

The active shadow runs are read from the database at most every ``EXPERIMENT_CHECK_SECONDS``
per process (and at once in the process that saved a change, :func:`forget_runs`). A served
list is sampled with each run's ``sample_share``; a sampled list's job leaves when the request
finishes (``request_finished``: after the response has been sent), or at once for a list served
without a request. The request itself never waits for the candidate.

With a Redis cache the job is queued in one Redis list (``RPUSH``: one round trip, as the
impressions are) and one Celery task (``recommendations.score_shadow_batch``) scores the queue
when it holds ``BATCH`` jobs, when this process has not asked for a drain for ``FLUSH_SECONDS``,
and every minute from beat: publishing a Celery message per sampled request cost several times
the push. Without Redis each job is its own task (``recommendations.score_shadow``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.signals import request_finished

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

__all__ = [
    "BATCH",
    "FLUSH_SECONDS",
    "QUEUE_KEY",
    "ShadowPlan",
    "forget_runs",
    "runs_for",
    "sample",
    "take_queued",
]

QUEUE_KEY = "rec:shadow-jobs"
# jobs queued before one task drains them, and how long a process lets its jobs wait at most
BATCH = 50
FLUSH_SECONDS = 10.0


@dataclass(frozen=True)
class ShadowPlan:
    """One active shadow run as the request path needs it."""

    id: int
    placement: str
    share: float


class _Runs:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.plans: tuple[ShadowPlan, ...] = ()


_runs = _Runs()
_pending = threading.local()
_drain_asked_at = [-math.inf]


def forget_runs() -> None:
    """Read the shadow runs again at the next list (after a change; tests)."""
    with _runs.lock:
        _runs.checked_at = -math.inf
    _drain_asked_at[0] = -math.inf


def runs_for(placement: str) -> list[ShadowPlan]:
    """The active shadow runs that shadow ``placement``; never raises (errors are logged)."""
    try:
        with _runs.lock:
            if time.monotonic() - _runs.checked_at >= recommender_settings.EXPERIMENT_CHECK_SECONDS:
                _runs.checked_at = time.monotonic()  # stamped first: a failing database is asked rarely
                from recommendations.models import ShadowRun

                _runs.plans = tuple(
                    ShadowPlan(pk, placement_name, share)
                    for pk, placement_name, share in ShadowRun.objects.filter(is_active=True)
                    .order_by("pk")
                    .values_list("pk", "placement", "sample_share")
                )
            plans = _runs.plans
    except Exception:  # a shadow must never fail a list
        logger.exception("the shadow runs could not be read")
        return []
    return [plan for plan in plans if plan.placement in ("", placement)]


def sample(result: Any, *, user_id: Any, visitor_id: str, limit: int, request: Any = None) -> int:
    """Sample a served (and recorded) list for each active shadow run; returns how many were.

    The scoring task gets ids and keys only; with a request it is enqueued when the request
    finishes, else now.
    """
    if not result.items:
        return 0
    plans = runs_for(result.placement)
    if not plans:
        return 0
    jobs = [
        (plan.id, str(result.recommendation_id), user_id, visitor_id, result.keys, limit)
        for plan in plans
        if plan.share > 0 and random.random() < plan.share
    ]
    if not jobs:
        return 0
    if request is None:
        _enqueue(jobs)
    else:
        queued = getattr(_pending, "jobs", None)
        if queued is None:
            queued = _pending.jobs = []
        queued.extend(jobs)
    return len(jobs)


def _queue_key() -> str:
    from recommendations.services.serving.impressions import cache_key

    return cache_key(QUEUE_KEY)


def _publish(task_name: str, *args: object) -> None:
    from recommendations import tasks
    from recommendations.runtime.enqueue import enqueue

    try:
        enqueue(getattr(tasks, task_name), *args)
    except Exception:  # an eager run's error, or anything else: the list was served already
        logger.exception("shadow scoring: the task %s failed", task_name)


def _enqueue(jobs: list[tuple]) -> None:
    from recommendations.services.serving.impressions import redis_client

    client = redis_client()
    if client is not None:
        try:
            queued = int(client.rpush(_queue_key(), *(json.dumps(job) for job in jobs)))
        except Exception:
            logger.warning("shadow job queue unavailable: one task per job", exc_info=True)
        else:
            if queued >= BATCH or time.monotonic() - _drain_asked_at[0] >= FLUSH_SECONDS:
                _drain_asked_at[0] = time.monotonic()
                _publish("score_shadow_batch")
            return
    for job in jobs:
        _publish("score_shadow", *job)


def take_queued(limit: int) -> list[list]:
    """Up to ``limit`` queued jobs, oldest first, taken out of the Redis queue atomically
    (two drains never score one job twice); [] without Redis."""
    from recommendations.services.serving.impressions import redis_client

    client = redis_client()
    if client is None:
        return []
    pipe = client.pipeline(transaction=True)
    pipe.lrange(_queue_key(), 0, limit - 1)
    pipe.ltrim(_queue_key(), limit, -1)
    raw, _ = pipe.execute()
    return [json.loads(item) for item in raw]


def _on_request_finished(**_: Any) -> None:
    jobs = getattr(_pending, "jobs", None)
    if jobs:
        _pending.jobs = []
        _enqueue(jobs)


request_finished.connect(_on_request_finished, dispatch_uid="recommendations.shadow.sampling")
