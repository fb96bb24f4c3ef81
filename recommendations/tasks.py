"""Celery tasks of the recommender: thin wrappers over services, with permanent names.

Each task takes only primitives, imports its service lazily (so importing the tasks
module, e.g. by Celery's autodiscovery in a web process, does not load torch), and is
idempotent so that a redelivery is harmless.
"""

import random
from collections.abc import Callable
from dataclasses import asdict
from typing import TypeVar

from celery import shared_task
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerOperationalError

from recommendations.conf import recommender_settings
from recommendations.runtime.priority import lower_task_priority

_T = TypeVar("_T")

# The chunk tasks of the fanned-out jobs (list refresh, profile rebuild): acknowledged once done,
# so a chunk whose worker died is delivered again (every chunk is idempotent); retried alone.
CHUNK_TASK_OPTIONS: dict = {
    "bind": True,
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": 3600,
    "time_limit": 3900,
    "max_retries": 3,
}

# Lost database or broker connections: worth another attempt (a training, a refresh chunk);
# anything else is not.
TRANSIENT_TRAINING_ERRORS = (
    DatabaseInterfaceError,
    DatabaseOperationalError,
    BrokerOperationalError,
    ConnectionError,
)


# --- serving: precomputed lists, item relations, popularity --------------------------------------------
@shared_task(name="recommendations.refresh_recommendations", ignore_result=True, soft_time_limit=3600)
def refresh_recommendations() -> int | None:
    """Score every active user through the active model and store the lists (table + cache).

    The users are cut into chunks of ``REFRESH_CHUNK_USERS`` that run as ``refresh_lists_chunk``
    tasks on any listening worker (``serving.fanout``); a single chunk runs here. Returns the number
    of active users planned, or None (at once) when another refresh is running.
    """
    from recommendations.services.serving.fanout import start_refresh

    lower_task_priority()
    refresh = start_refresh(fan_out=fan_out_chunks)
    return None if refresh is None else sum(refresh.chunks.values_list("planned", flat=True))


def fan_out_chunks(refresh) -> None:
    """One ``refresh_lists_chunk`` task per chunk of the refresh (a group; the last chunk closes it)."""
    from celery import group

    chunks = refresh.chunks.order_by("index").values_list("index", flat=True)
    group(refresh_lists_chunk.si(refresh.pk, index) for index in chunks).apply_async()


def _backoff(retries: int, *, first: float, cap: float) -> float:
    """Exponential backoff (``first``, twice that, four times…, at most ``cap`` seconds) with full jitter."""
    return random.uniform(0, min(cap, first * (2**retries)))


@shared_task(name="recommendations.refresh_lists_chunk", **CHUNK_TASK_OPTIONS)
def refresh_lists_chunk(self, refresh_id: int, index: int) -> str:
    """Refresh the lists of one chunk of users (``serving.fanout.run_chunk``); idempotent.

    Retried alone on transient connection errors; a chunk that fails for good is recorded as
    failed (its users keep their previous lists) and the refresh finishes without it.
    """
    from recommendations.services.serving.fanout import fail_chunk, run_chunk

    lower_task_priority()

    def failed(exc: BaseException) -> str:
        fail_chunk(refresh_id, index, exc)
        return "failed"

    return _attempt_chunk(self, lambda: run_chunk(refresh_id, index).status, failed)


def _attempt_chunk(task, run: Callable[[], _T], fail: Callable[[BaseException], _T]) -> _T:
    """Run one chunk of a fanned-out job; a chunk that fails for good is recorded by ``fail``.

    Transient connection errors are retried alone (the task's ``max_retries``, jittered backoff)
    before they count; any other error is not worth retrying and is recorded at once, so that
    the job still finishes the other chunks.
    """
    try:
        return run()
    except TRANSIENT_TRAINING_ERRORS as exc:
        if task.request.retries < task.max_retries:
            raise task.retry(exc=exc, countdown=_backoff(task.request.retries, first=5.0, cap=300.0)) from exc
        return fail(exc)
    except Exception as exc:
        return fail(exc)


@shared_task(name="recommendations.refresh_item_relations", ignore_result=True, soft_time_limit=3600)
def refresh_item_relations() -> dict | None:
    """Recompute similar / bought-together relations and popular / trending items.

    None (at once) when another process is refreshing them (``serving.jobs``).
    """
    from recommendations.services.serving.jobs import refresh_relations

    return refresh_relations()


@shared_task(name="recommendations.check_alerts", ignore_result=True, soft_time_limit=600)
def check_alerts() -> dict:
    """Raise the periodic alerts: no promotion for days, a sharp click-through drop (``ops.alerts``)."""
    from recommendations.ops.alerts import check_alerts as check

    return check()


@shared_task(name="recommendations.check_experiments", ignore_result=True, soft_time_limit=600)
def check_experiments() -> dict:
    """The experiments' guardrail, and the results of ended ones kept (``experiments.lifecycle``)."""
    from recommendations.services.experiments.lifecycle import check_experiments as check

    return check()


@shared_task(name="recommendations.score_shadow", ignore_result=True, soft_time_limit=60, time_limit=90)
def score_shadow(
    run_id: int, recommendation_id: str, user_id: int | None, visitor_id: str, served_keys: list, limit: int
) -> str:
    """Score one sampled request with a shadow candidate (``services.shadow.scoring``)."""
    from recommendations.services.shadow.scoring import score_request

    return score_request(run_id, recommendation_id, user_id, visitor_id, served_keys, limit).status


@shared_task(
    name="recommendations.score_shadow_batch", ignore_result=True, soft_time_limit=600, time_limit=660
)
def score_shadow_batch() -> dict:
    """Score the shadow jobs queued in Redis (``services.shadow.scoring.score_queued``)."""
    from recommendations.services.shadow.scoring import score_queued

    return score_queued()


# --- training ------------------------------------------------------------------------------------
# The retrain task is routed to RECOMMENDER["TRAIN_QUEUE"] (see ``enqueue_retrain`` and the project's
# CELERY_TASK_ROUTES); its time limits come from the same settings dict.


@shared_task(
    name="recommendations.retrain_model",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=recommender_settings.TRAIN_SOFT_TIME_LIMIT,
    time_limit=recommender_settings.TRAIN_TIME_LIMIT,
    max_retries=recommender_settings.TRAIN_MAX_RETRIES,
)
def retrain_model(self, triggered_by: str = "schedule", window_days: int | None = None) -> dict:
    """Train a new model version (``recommendations.services.training.train_model``).

    Idempotent enough to be redelivered: a second concurrent delivery is answered by a
    ``skipped`` run. Retries, with backoff and jitter, only on transient connection errors.
    """
    from recommendations.runtime.schedule import schedule_guard_seconds
    from recommendations.services.training import train_model

    lower_task_priority()
    try:
        run = train_model(
            triggered_by=triggered_by,
            window_days=window_days,
            task_id=self.request.id or "",
            once_within_seconds=schedule_guard_seconds(self.request.get("periodic_task_name")),
        )
    except TRANSIENT_TRAINING_ERRORS as exc:  # e.g. the database was unreachable before the run existed
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries, first=30.0, cap=1800.0)) from exc
    if getattr(run, "transient_error", False):
        raise self.retry(countdown=_backoff(self.request.retries, first=30.0, cap=1800.0))
    version = run.model_version
    return {
        "run": run.pk,
        "status": run.status,
        "version": version.number if version is not None else None,
        "version_status": version.status if version is not None else None,
    }


def enqueue_retrain(*, triggered_by: str, window_days: int | None = None) -> bool | None:
    """Queue a training on ``TRAIN_QUEUE`` once the current transaction commits.

    Returns whether the broker took it when that happened at once (no transaction open, as in
    an admin action): False means nothing will run (the broker is unreachable; logged). None
    when it waits for the caller's commit (the outcome is then only logged).
    """
    queue = recommender_settings.TRAIN_QUEUE
    # Published through runtime.enqueue, so a broker outage is reported instead of raising into
    # the web request that asked (the admin's "retrain").
    from recommendations.runtime.enqueue import enqueue

    outcome: list[bool] = []
    transaction.on_commit(
        lambda: outcome.append(
            enqueue(
                retrain_model, options={"queue": queue}, triggered_by=triggered_by, window_days=window_days
            )
        )
    )
    return outcome[0] if outcome else None


# --- profiles --------------------------------------------------------------------------------------
@shared_task(
    name="recommendations.rebuild_profiles",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=3600,
    time_limit=3900,
)
def rebuild_profiles(user_ids: list | None = None, full: bool = False) -> dict:
    """Rebuild user profiles (incremental unless ``full``); idempotent, so a redelivery is harmless.

    The users are cut into chunks of ``PROFILE_CHUNK_USERS`` that run as ``rebuild_profiles_chunk``
    tasks on any listening worker (``services.profiles.fanout``); a single chunk runs here. Returns
    what the rebuild did, or, when it fanned out, what it planned (status ``running``).
    """
    from recommendations.services.profiles import rebuild_profiles as rebuild

    lower_task_priority()
    return asdict(rebuild(user_ids=user_ids, full=full, fan_out=fan_out_profile_chunks))


def fan_out_profile_chunks(run) -> None:
    """One ``rebuild_profiles_chunk`` task per chunk waiting for its next pass (a group; the last
    chunk of a pass moves the rebuild on)."""
    from celery import group

    from recommendations.services.profiles.fanout import waiting

    chunks = waiting(run).order_by("index").values_list("index", flat=True)
    group(rebuild_profiles_chunk.si(run.pk, index) for index in chunks).apply_async()


@shared_task(name="recommendations.rebuild_profiles_chunk", **CHUNK_TASK_OPTIONS)
def rebuild_profiles_chunk(self, run_id: int, index: int) -> str:
    """Run the next pass of one chunk of a profile rebuild (``profiles.fanout.run_chunk``); idempotent.

    Retried alone on transient connection errors; a chunk that fails for good is recorded as
    failed (its users keep their previous profiles) and the rebuild finishes without it. The
    chunk that ends a full rebuild's first pass runs the fit and sends the second pass.
    """
    from recommendations.services.profiles.fanout import fail_chunk, finish, run_chunk

    lower_task_priority()
    outcome = _attempt_chunk(
        self, lambda: run_chunk(run_id, index), lambda exc: fail_chunk(run_id, index, exc)
    )
    if outcome.fitted:
        try:
            fan_out_profile_chunks(outcome.chunk.run)
        except Exception:
            finish(run_id)  # nothing will write the profiles: closed, everyone keeps theirs
            raise
    return outcome.chunk.status
