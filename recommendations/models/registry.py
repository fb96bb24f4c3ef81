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
from django.utils.translation import gettext_lazy as _

__all__ = ["ModelVersion", "TrainingRun"]


class TrainingRun(models.Model):
    """One training attempt, from lock to outcome; the heartbeat tells a live run from a dead one."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        NOT_ENOUGH_DATA = "not_enough_data", _("Not enough data")
        # The worker died (or was killed) without finishing: its heartbeat went stale.
        ABANDONED = "abandoned", _("Abandoned")
        # Another training held the lock; this call returned at once without training.
        SKIPPED = "skipped", _("Skipped")

    #: not stored: set by ``train_model`` on the run it returns, True when the run failed on a lost
    #: database or broker connection (the Celery task retries those)
    transient_error: bool = False
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True, verbose_name=_("status")
    )
    triggered_by = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text=_('Who asked: "schedule", "command", "admin:<user>"…'),
        verbose_name=_("triggered by"),
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Training window (None = all)."), verbose_name=_("window days")
    )
    started_at = models.DateTimeField(default=timezone.now, verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    heartbeat_at = models.DateTimeField(default=timezone.now, verbose_name=_("heartbeat at"))
    timings = models.JSONField(
        default=dict, blank=True, help_text=_("Seconds spent per stage."), verbose_name=_("timings")
    )
    event_count = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("event count"))
    user_count = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("user count"))
    item_count = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("item count"))
    error = models.TextField(blank=True, default="", verbose_name=_("error"))
    worker_host = models.CharField(max_length=255, blank=True, default="", verbose_name=_("worker host"))
    worker_pid = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("worker pid"))
    celery_task_id = models.CharField(
        max_length=255, blank=True, default="", verbose_name=_("celery task id")
    )

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="rec_run_status_beat")]
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")

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
        CANDIDATE = "candidate", _("Candidate")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")

    number = models.PositiveIntegerField(
        unique=True, help_text=_("Increments with every version."), verbose_name=_("number")
    )
    training_run = models.ForeignKey(
        TrainingRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="model_versions",
        verbose_name=_("training run"),
    )
    artifact_path = models.CharField(
        max_length=500,
        help_text=_("Folder in the default storage holding the artefact files."),
        verbose_name=_("artifact path"),
    )
    artifact_files = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("File name -> sha256 of every file of the artefact."),
        verbose_name=_("artifact files"),
    )
    sha256 = models.CharField(
        max_length=64, help_text=_("Digest of the artefact's file manifest."), verbose_name=_("sha256")
    )
    metrics = models.JSONField(default=dict, blank=True, verbose_name=_("metrics"))
    baseline_metrics = models.JSONField(
        default=dict, blank=True, help_text=_("Baseline name -> metrics."), verbose_name=_("baseline metrics")
    )
    active_metrics = models.JSONField(
        null=True,
        blank=True,
        help_text=_("The previously active version's metrics on the same holdout."),
        verbose_name=_("active metrics"),
    )
    compared_with = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The version that was active when this one was evaluated."),
        verbose_name=_("compared with"),
    )
    replaced_version = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The version this one replaced when it was activated (the target of a rollback)."),
        verbose_name=_("replaced version"),
    )
    hyperparameters = models.JSONField(default=dict, blank=True, verbose_name=_("hyperparameters"))
    report = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("The training report of the core library."),
        verbose_name=_("report"),
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.CANDIDATE, verbose_name=_("status")
    )
    status_reason = models.TextField(blank=True, default="", verbose_name=_("status reason"))
    promoted_by = models.CharField(max_length=150, blank=True, default="", verbose_name=_("promoted by"))
    promoted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("promoted at"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="rec_single_active_version"
            )
        ]
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")

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
