"""The training service: one run from the event log to a registered (and maybe active) version.

``train_model`` is the only entry point; the Celery task ``recommendations.retrain_model``,
the ``retrain`` command and the admin's "retrain" action all call it.

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

Promotion guard
    The new model, the popularity and co-visitation baselines and the active version are
    all scored on the SAME fresh time-based holdout. The new version is activated only when
    its ``PROMOTION_METRIC`` beats popularity and is not worse than the active version's by
    more than ``PROMOTION_TOLERANCE`` (relative); otherwise it stays a candidate with the
    reason recorded. Any error fails the run and leaves the active version untouched.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import InterfaceError, OperationalError, connections
from django.db.models import Count, Max, Min
from django.utils import timezone

from recommendations.conf import network_config, recommender_settings
from recommendations.core.base import BaseRecommender
from recommendations.core.baselines import CoVisitationRecommender, PopularityRecommender
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog, History
from recommendations.core.evaluation import evaluate, holdout_last_events
from recommendations.core.progress import Progress
from recommendations.core.recommender import BehaviorRecommender
from recommendations.data.clock import data_now
from recommendations.data.events import load_event_log, usable_events
from recommendations.models import ModelVersion, TrainingRun
from recommendations.runtime.locks import RunLock, run_lock
from recommendations.services.registry import (
    RegistryError,
    StoredArtifact,
    activate_version,
    delete_artifact,
    load_version,
    store_artifact,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ANOTHER_TRAINING_RUNNING",
    "PromotionDecision",
    "RecommendFn",
    "abandon_stale_runs",
    "baseline_recommenders",
    "decide_promotion",
    "network_config",
    "outside_window_hint",
    "train_model",
    "training_lock",
]

ANOTHER_TRAINING_RUNNING = "another training is running"
ALREADY_RAN_THIS_PERIOD = "a training for this schedule already ran in this period"
# The evaluation cut-off; the promotion metric names it ("NDCG@10").
EVALUATION_K = 10
# Errors worth a retry of the whole task: the database or broker connection went away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (InterfaceError, OperationalError, ConnectionError)

RecommendFn = Callable[[list[History], int, Sequence[set[str]] | None], list[list[tuple[str, float]]]]


# --- configuration ------------------------------------------------------------------------------


# --- the lock -----------------------------------------------------------------------------------

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


class _Heartbeat:
    """A daemon thread stamping the run's ``heartbeat_at`` (and renewing the lease) until stopped."""

    def __init__(self, run: TrainingRun, lock: Any) -> None:
        self.run_id = run.pk
        self.lock = lock
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"training-heartbeat-{run.pk}", daemon=True)

    def __enter__(self) -> _Heartbeat:
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


# --- baselines ----------------------------------------------------------------------------------


def baseline_recommenders(log: EventLog, config: NetworkConfig) -> dict[str, RecommendFn]:
    """The core's built-in baselines fitted on ``log``: ``{"popularity": fn, "covisitation": fn}``.

    Both rank every item of ``log`` (full ranking, as the evaluation protocol requires),
    with the same event weights and co-visitation window as the behaviour network.
    """
    weights = dict(config.event_weights)
    popularity = PopularityRecommender(event_weights=weights).fit(log)
    covisited = CoVisitationRecommender(
        window=config.covis_window,
        session_gap_hours=config.session_gap_hours,
        neighbours=config.neighbours,
        event_weights=weights,
    ).fit(log)
    return {"popularity": recommender_fn(popularity), "covisitation": recommender_fn(covisited)}


def recommender_fn(recommender: BaseRecommender) -> RecommendFn:
    """Adapt a fitted recommender to the evaluation's ``recommend_fn(histories, n, exclude)``."""

    def recommend(
        histories: list[History], n: int, exclude: Sequence[set[str]] | None
    ) -> list[list[tuple[str, float]]]:
        # the evaluation excludes exactly each shopper's history (items new to them are the targets)
        return recommender.recommend(histories, n, exclude=exclude, seen_excluded=exclude is not None)

    return recommend


# --- the promotion guard ------------------------------------------------------------------------


@dataclass
class PromotionDecision:
    """Whether a new version may become active, and why (recorded on the version)."""

    promote: bool
    reason: str


def decide_promotion(
    *,
    metrics: dict[str, Any],
    baseline_metrics: dict[str, dict[str, Any]],
    active_metrics: dict[str, Any] | None,
    active_number: int | None = None,
    active_error: str = "",
    metric: str | None = None,
    tolerance: float | None = None,
) -> PromotionDecision:
    """The guard: beat popularity AND be no worse than the active version beyond the tolerance.

    ``tolerance`` is relative: with 0.02 a new NDCG@10 of 0.098 still replaces an active 0.1.
    """
    metric = metric or recommender_settings.PROMOTION_METRIC
    tolerance = recommender_settings.PROMOTION_TOLERANCE if tolerance is None else tolerance
    new = _number(metrics.get(metric))
    if new is None:
        return PromotionDecision(False, f"the new model has no {metric}")
    popular = _number((baseline_metrics.get("popularity") or {}).get(metric))
    if popular is not None and not new > popular:
        return PromotionDecision(
            False, f"{metric} {new:.4f} does not beat the popularity baseline ({popular:.4f})"
        )
    versus_popularity = (
        f"beats popularity ({popular:.4f})" if popular is not None else "has no popularity baseline"
    )
    if active_number is None:
        return PromotionDecision(True, f"{metric} {new:.4f} {versus_popularity}; no version was active")
    active = _number((active_metrics or {}).get(metric))
    if active is None:
        why = f" ({active_error})" if active_error else ""
        return PromotionDecision(
            True,
            f"{metric} {new:.4f} {versus_popularity}; the active v{active_number} could not be scored{why}",
        )
    floor = active * (1.0 - tolerance)
    if new < floor:
        return PromotionDecision(
            False,
            f"{metric} {new:.4f} is worse than the active v{active_number} ({active:.4f}) "
            f"beyond the tolerance of {tolerance:.1%} (needs at least {floor:.4f})",
        )
    return PromotionDecision(
        True,
        f"{metric} {new:.4f} {versus_popularity} and is not worse than the active v{active_number} "
        f"({active:.4f}, tolerance {tolerance:.1%})",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float | np.floating | np.integer) and math.isfinite(float(value)):
        return float(value)
    return None


# --- the service ------------------------------------------------------------------------------


class _NotEnoughData(Exception):
    """Raised inside a run to end it with status ``not_enough_data`` (not an error)."""


def train_model(
    *,
    triggered_by: str = "manual",
    window_days: int | None = None,
    task_id: str = "",
    progress: Progress | None = None,
    once_within_seconds: float | None = None,
) -> TrainingRun:
    """Run one whole training and return its ``TrainingRun`` (see the module docstring).

    ``window_days`` defaults to ``TRAINING_WINDOW_DAYS``. The returned run carries a
    non-persisted attribute ``transient_error`` (True when it failed on a lost database
    or broker connection, which the Celery task retries). ``progress(stage, fraction)`` is
    called while the network trains (the ``retrain`` command prints it).

    ``once_within_seconds`` (scheduled runs): the run is ``skipped`` when another run with the
    same ``triggered_by`` started less than that many seconds ago and did not fail. Checked
    under the training lock, so of two beats that send the same period's task (or a
    redelivery) only the first trains, however short the training is.
    """
    if window_days is None:
        window_days = recommender_settings.TRAINING_WINDOW_DAYS
    common = {
        "triggered_by": triggered_by[:150],
        "window_days": window_days,
        "worker_host": socket.gethostname()[:255],
        "worker_pid": os.getpid(),
        "celery_task_id": task_id or "",
    }
    with training_lock() as lock:
        reason = ANOTHER_TRAINING_RUNNING if lock is None else None
        if (
            reason is None
            and once_within_seconds is not None
            and _ran_recently(common["triggered_by"], once_within_seconds)
        ):
            reason = ALREADY_RAN_THIS_PERIOD
        if reason is not None:
            now = timezone.now()
            run = TrainingRun.objects.create(
                status=TrainingRun.Status.SKIPPED,
                finished_at=now,
                heartbeat_at=now,
                error=reason,
                **common,
            )
            run.transient_error = False
            logger.info("training skipped: %s", reason)
            return run
        abandon_stale_runs()
        run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, **common)
        run.transient_error = False
        with _Heartbeat(run, lock):
            _execute(run, window_days=window_days, progress=progress)
    return run


def _ran_recently(triggered_by: str, seconds: float) -> bool:
    """Whether a run with this trigger started less than ``seconds`` ago and did not fail."""
    since = timezone.now() - timedelta(seconds=seconds)
    return (
        TrainingRun.objects.filter(triggered_by=triggered_by, started_at__gte=since)
        .filter(status__in=[TrainingRun.Status.RUNNING, TrainingRun.Status.SUCCEEDED])
        .exists()
    )


def _execute(run: TrainingRun, *, window_days: int | None, progress: Progress | None = None) -> None:
    timings: dict[str, float] = {}
    stored: StoredArtifact | None = None
    version_created = False

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = round(time.perf_counter() - started, 4)

    try:
        with stage("load"):
            # the window ends at the newest stored event, not at the wall clock: an imported
            # history of last year trains like a live one (recommendations.data.clock)
            clock = data_now()
            log = load_event_log(window_days=window_days, clock=clock)
        run.event_count = len(log)
        run.user_count = len(set(log.users.tolist()))
        run.item_count = len(set(log.items.tolist()))
        _require_enough(run, log, window_days=window_days, clock=clock)

        with stage("holdout"):
            train_log, targets = holdout_last_events(log)
        if len(targets) < recommender_settings.MIN_TRAINING_USERS:
            raise _NotEnoughData(
                f"only {len(targets)} shoppers have a holdout event; "
                f"MIN_TRAINING_USERS is {recommender_settings.MIN_TRAINING_USERS}"
                + outside_window_hint(window_days, clock)
            )

        config = network_config()
        with stage("fit"):
            # the propensity head is trained once, by the refit on every event below
            recommender = BehaviorRecommender(config).fit(train_log, progress=progress, propensity=False)

        with stage("evaluate"):
            metrics = _evaluate(recommender_fn(recommender), train_log, targets)
            baseline_metrics = {
                name: _evaluate(fn, train_log, targets)
                for name, fn in baseline_recommenders(train_log, config).items()
            }
            active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
            active_metrics, active_error = None, ""
            if active is not None:
                try:
                    active_metrics = _evaluate(recommender_fn(load_version(active)), train_log, targets)
                except Exception as exc:  # a broken active model must not block its replacement
                    active_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("the active v%s could not be scored: %s", active.number, active_error)

        with stage("refit"):
            # the holdout is each shopper's newest step, the most telling one: once the promotion guard
            # has scored the model on it, the served model learns it too (one more pass, every choice kept)
            recommender.refit(log, progress=progress)

        with stage("save"), tempfile.TemporaryDirectory(prefix="recommender-train-") as folder:
            recommender.save(folder)
            number = (ModelVersion.objects.aggregate(top=Max("number"))["top"] or 0) + 1
            stored = store_artifact(folder, number=number)

        decision = decide_promotion(
            metrics=metrics,
            baseline_metrics=baseline_metrics,
            active_metrics=active_metrics,
            active_number=active.number if active is not None else None,
            active_error=active_error,
        )
        with stage("register"):
            version = ModelVersion.objects.create(
                number=number,
                training_run=run,
                artifact_path=stored.path,
                artifact_files=stored.files,
                sha256=stored.sha256,
                metrics=metrics,
                baseline_metrics=baseline_metrics,
                active_metrics=active_metrics,
                compared_with=active,
                hyperparameters=_json_safe(recommender.config_.to_dict()),
                report=_json_safe(getattr(recommender, "report_", {}) or {}),
                status=ModelVersion.Status.CANDIDATE,
                status_reason=decision.reason if not decision.promote else "",
            )
            version_created = True
            if decision.promote:
                try:
                    activate_version(version, by=f"training run {run.pk}", reason=decision.reason)
                except RegistryError as exc:
                    version.status_reason = f"{decision.reason}; but activation failed: {exc}"
                    version.save(update_fields=["status_reason"])
                    raise
        run.status = TrainingRun.Status.SUCCEEDED
        logger.info(
            "training run %s: v%s %s (%s)",
            run.pk,
            number,
            "activated" if decision.promote else "kept as candidate",
            decision.reason,
        )
    except _NotEnoughData as exc:
        run.status = TrainingRun.Status.NOT_ENOUGH_DATA
        run.error = str(exc)
        logger.info("training run %s: not enough data: %s", run.pk, exc)
    except Exception as exc:
        run.status = TrainingRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
        run.transient_error = isinstance(exc, TRANSIENT_ERRORS)
        logger.exception("training run %s failed", run.pk)
        if stored is not None and not version_created:
            delete_artifact(stored.path, stored.files)  # never leave a partial or orphan artefact
    finally:
        run.timings = timings
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        run.save()


def _require_enough(run: TrainingRun, log: EventLog, *, window_days: int | None, clock: datetime) -> None:
    minimum = recommender_settings.MIN_TRAINING_EVENTS
    if len(log) < minimum:
        raise _NotEnoughData(
            f"{len(log):,} usable events; MIN_TRAINING_EVENTS is {minimum}"
            + outside_window_hint(window_days, clock)
        )
    if (run.user_count or 0) < recommender_settings.MIN_TRAINING_USERS:
        raise _NotEnoughData(
            f"{run.user_count} shoppers; MIN_TRAINING_USERS is {recommender_settings.MIN_TRAINING_USERS}"
            + outside_window_hint(window_days, clock)
        )


def outside_window_hint(window_days: int | None, clock: datetime) -> str:
    """How many usable events the training window leaves out, and how to include them ("" if none).

    The window is the ``window_days`` days before ``clock`` (the data clock); the suggested
    ``--window-days`` is the smallest that reaches back to the oldest stored event.
    """
    if window_days is None:
        return ""
    since = clock - timedelta(days=window_days)
    older = usable_events().filter(occurred_at__lt=since).aggregate(n=Count("pk"), oldest=Min("occurred_at"))
    if not older["n"]:
        return ""
    needed = max(math.ceil((clock - older["oldest"]).total_seconds() / 86_400.0), window_days + 1)
    return (
        f"; {older['n']:,} more events are older than the {window_days}-day window ending at "
        f"{clock:%Y-%m-%d %H:%M:%S %Z} (the newest stored event): run `retrain --window-days {needed}` "
        f"or set TRAINING_WINDOW_DAYS to {needed} (None: every event) to include them"
    )


def _evaluate(fn: RecommendFn, train_log: EventLog, targets: dict[str, str]) -> dict[str, Any]:
    # The holdout's targets are items new to each shopper: the history is masked ("novel").
    return _json_safe(evaluate(fn, train_log, targets, mask_history=True, k=EVALUATION_K))


def _json_safe(value: Any) -> Any:
    """numpy scalars and arrays, tuples and non-finite floats made storable as JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
