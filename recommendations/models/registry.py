"""The model registry: training runs and the versions of the behaviour network they produce.

A ``TrainingRun`` is one attempt to train (whatever its outcome); a successful run makes
one ``ModelVersion`` whose artefact lives in Django's default storage. At most one version
is ``active`` at a time (a partial unique constraint enforces it in the database), and the
services in ``recommendations.services.registry`` are the only code that changes a version's status.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

__all__ = ["ModelVersion", "TrainingRun"]


class TrainingRun(models.Model):
    """One training attempt, from lock to outcome; the heartbeat tells a live run from a dead one."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        NOT_ENOUGH_DATA = "not_enough_data", "Not enough data"
        # The worker died (or was killed) without finishing: its heartbeat went stale.
        ABANDONED = "abandoned", "Abandoned"
        # Another training held the lock; this call returned at once without training.
        SKIPPED = "skipped", "Skipped"

    #: not stored: set by ``train_model`` on the run it returns, True when the run failed on a lost
    #: database or broker connection (the Celery task retries those)
    transient_error: bool = False
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True)
    triggered_by = models.CharField(
        max_length=150, blank=True, default="", help_text='Who asked: "schedule", "command", "admin:<user>"…'
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Training window (None = all)."
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent per stage.")
    event_count = models.PositiveIntegerField(null=True, blank=True)
    user_count = models.PositiveIntegerField(null=True, blank=True)
    item_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    worker_host = models.CharField(max_length=255, blank=True, default="")
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="rec_run_status_beat")]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of the run, or None while it is still running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def model_version(self) -> ModelVersion | None:
        """The version this run produced, if any."""
        return self.model_versions.order_by("-number").first()


class ModelVersion(models.Model):
    """One trained behaviour network: its artefact, its metrics and its place in the registry.

    ``metrics`` are the new model's on the run's holdout; ``baseline_metrics`` and
    ``active_metrics`` are popularity / co-visitation and the then-active version on the
    SAME holdout, so the promotion decision can be audited later.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    number = models.PositiveIntegerField(unique=True, help_text="Increments with every version.")
    training_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    artifact_path = models.CharField(
        max_length=500, help_text="Folder in the default storage holding the artefact files."
    )
    artifact_files = models.JSONField(
        default=dict, blank=True, help_text="File name -> sha256 of every file of the artefact."
    )
    sha256 = models.CharField(max_length=64, help_text="Digest of the artefact's file manifest.")
    metrics = models.JSONField(default=dict, blank=True)
    baseline_metrics = models.JSONField(default=dict, blank=True, help_text="Baseline name -> metrics.")
    active_metrics = models.JSONField(
        null=True, blank=True, help_text="The previously active version's metrics on the same holdout."
    )
    compared_with = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version that was active when this one was evaluated.",
    )
    replaced_version = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version this one replaced when it was activated (the target of a rollback).",
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True, help_text="The training report of the core library.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    status_reason = models.TextField(blank=True, default="")
    promoted_by = models.CharField(max_length=150, blank=True, default="")
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="rec_single_active_version"
            )
        ]

    def __str__(self) -> str:
        return f"model v{self.number} ({self.status})"

    def metric(self, name: str) -> float | None:
        """The new model's value of one metric (None when not measured)."""
        return _metric(self.metrics, name)

    def baseline_metric(self, baseline: str, name: str) -> float | None:
        """One baseline's value of one metric on this version's holdout."""
        return _metric((self.baseline_metrics or {}).get(baseline), name)

    def active_metric(self, name: str) -> float | None:
        """The previously active version's value of one metric on this version's holdout."""
        return _metric(self.active_metrics, name)


def _metric(metrics: dict[str, Any] | None, name: str) -> float | None:
    if not metrics:
        return None
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None
