"""Runs of the list refresh, one row per refresh and per chunk of users (its progress).

A refresh splits the active users into chunks of consecutive primary keys that run as separate
Celery tasks; each chunk records its outcome here, so the admin and the command show how many
are done and which users kept their previous lists when a chunk failed for good.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["ListRefresh", "ListRefreshChunk"]


class ListRefresh(models.Model):
    """One refresh of the precomputed lists (``recommendations.refresh_recommendations``)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        PARTIAL = "partial", _("Partly done")
        FAILED = "failed", _("Failed")

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RUNNING, verbose_name=_("status")
    )
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    chunk_users = models.PositiveIntegerField(default=0, verbose_name=_("users per chunk"))
    chunks_total = models.PositiveIntegerField(default=0, verbose_name=_("chunks"))
    users = models.PositiveIntegerField(default=0, verbose_name=_("users refreshed"))
    failed_users = models.PositiveIntegerField(default=0, verbose_name=_("users not scored"))
    #: the data clock the active users were chosen against (every chunk uses the same)
    clock = models.DateTimeField(null=True, blank=True, verbose_name=_("data clock"))
    #: wall and CPU seconds per stage, summed over the chunks: ``{stage: [wall, cpu]}``
    timings = models.JSONField(default=dict, blank=True, verbose_name=_("timings"))
    seconds = models.FloatField(default=0.0, verbose_name=_("seconds"))
    started_at = models.DateTimeField(default=timezone.now, verbose_name=_("started at"))
    #: when the refresh last made progress (a chunk finished): a running refresh that has not
    #: moved for the lease (``serving.jobs.LEASE_SECONDS``) no longer blocks the next one
    heartbeat_at = models.DateTimeField(default=timezone.now, verbose_name=_("last progress"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "-started_at"], name="rec_listrefresh_status")]
        verbose_name = _("list refresh")
        verbose_name_plural = _("list refreshes")

    def __str__(self) -> str:
        return f"refresh {self.pk} ({self.status})"

    @property
    def chunks_done(self) -> int:
        return self.chunks.filter(status=ListRefreshChunk.Status.DONE).count()


class ListRefreshChunk(models.Model):
    """The users of one refresh with primary keys ``first_user``..``last_user`` (both included)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    refresh = models.ForeignKey(
        ListRefresh, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("refresh")
    )
    index = models.PositiveIntegerField(verbose_name=_("index"))
    # Primary keys as text: the user model is swappable and its key may be anything ordered.
    first_user = models.CharField(max_length=64, verbose_name=_("first user"))
    last_user = models.CharField(max_length=64, verbose_name=_("last user"))
    planned = models.PositiveIntegerField(default=0, verbose_name=_("active users"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=_("status")
    )
    users = models.PositiveIntegerField(default=0, verbose_name=_("users refreshed"))
    failed_users = models.PositiveIntegerField(default=0, verbose_name=_("users not scored"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    error = models.TextField(blank=True, default="", verbose_name=_("error"))
    timings = models.JSONField(default=dict, blank=True, verbose_name=_("timings"))
    seconds = models.FloatField(default=0.0, verbose_name=_("seconds"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        ordering = ["refresh", "index"]
        constraints = [
            models.UniqueConstraint(fields=["refresh", "index"], name="rec_listrefresh_chunk_unique"),
        ]
        verbose_name = _("list refresh chunk")
        verbose_name_plural = _("list refresh chunks")

    def __str__(self) -> str:
        return f"chunk {self.index} of refresh {self.refresh_id} ({self.status})"
