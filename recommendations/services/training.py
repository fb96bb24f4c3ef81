"""The training service: one run from the event log to a registered (and maybe active) version.

``train_model`` is the only entry point; the Celery task ``recommendations.retrain_model``,
the ``retrain`` command and the admin's "retrain" action all call it.

A run holds the one-training-at-a-time lock and a heartbeat
(:mod:`~recommendations.services.training_guard`), trains on the configured window, scores the
new model, the baselines and the active version on one fresh time-based holdout
(:mod:`~recommendations.services.holdout_scoring`), and activates the new version only when
the promotion guard allows it (:mod:`~recommendations.services.promotion`). Any error fails the
run and leaves the active version untouched.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.db import InterfaceError, OperationalError
from django.db.models import Count, Max, Min
from django.utils import timezone

from recommendations.conf import network_config, recommender_settings
from recommendations.core.dataset import EventLog
from recommendations.core.evaluation import holdout_last_events
from recommendations.core.progress import Progress
from recommendations.data.clock import data_now
from recommendations.data.events import usable_events
from recommendations.data.training_events import stream_training_events
from recommendations.models import ModelVersion, TrainingRun
from recommendations.services.artifact_store import (
    StoredArtifact,
    delete_artifact,
    load_version,
    store_artifact,
)
from recommendations.services.holdout_scoring import (
    baseline_recommenders,
    evaluate_on_holdout,
    json_safe,
    recommender_fn,
)
from recommendations.services.promotion import decide_promotion
from recommendations.services.registry import RegistryError, activate_version
from recommendations.services.training_guard import Heartbeat, abandon_stale_runs, training_lock
from recommendations.services.training_launch import EVENTS_FOLDER, fit_recommender, refit_recommender

logger = logging.getLogger(__name__)

__all__ = ["ALREADY_RAN_THIS_PERIOD", "ANOTHER_TRAINING_RUNNING", "outside_window_hint", "train_model"]

ANOTHER_TRAINING_RUNNING = "another training is running"
ALREADY_RAN_THIS_PERIOD = "a training for this schedule already ran in this period"
# Errors worth a retry of the whole task: the database or broker connection went away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (InterfaceError, OperationalError, ConnectionError)

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
            and _ran_recently(triggered_by[:150], once_within_seconds)
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
        with Heartbeat(run, lock):
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

    # the training window packed on disk (a launched job maps it) and the network's sequences
    scratch = Path(tempfile.mkdtemp(prefix="recommender-data-"))
    try:
        with stage("load"):
            # the window ends at the newest stored event, not at the wall clock: an imported
            # history of last year trains like a live one (recommendations.data.clock)
            clock = data_now()
            packed = stream_training_events(scratch / EVENTS_FOLDER, window_days=window_days, clock=clock)
            log = packed.to_event_log()
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
            recommender = fit_recommender(train_log, config, scratch=scratch, progress=progress)

        with stage("evaluate"):
            metrics = evaluate_on_holdout(recommender_fn(recommender), train_log, targets)
            baseline_metrics = {
                name: evaluate_on_holdout(fn, train_log, targets)
                for name, fn in baseline_recommenders(train_log, config).items()
            }
            active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
            active_metrics, active_error = None, ""
            if active is not None:
                try:
                    active_metrics = evaluate_on_holdout(
                        recommender_fn(load_version(active)), train_log, targets
                    )
                except Exception as exc:  # a broken active model must not block its replacement
                    active_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("the active v%s could not be scored: %s", active.number, active_error)

        with stage("refit"):
            # the holdout is each shopper's newest step, the most telling one: once the promotion guard
            # has scored the model on it, the served model learns it too (one more pass, every choice kept)
            recommender = refit_recommender(recommender, log, scratch=scratch, progress=progress)

        with stage("save"), tempfile.TemporaryDirectory(prefix="recommender-train-") as folder:
            recommender.save(folder, compress=recommender_settings.MODEL_COMPRESSION)
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
                hyperparameters=json_safe(recommender.config_.to_dict()),
                report=json_safe(getattr(recommender, "report_", {}) or {}),
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
        shutil.rmtree(scratch, ignore_errors=True)
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
