"""The chunks of users one profile rebuild is split into (its progress, and what each chunk staged).

A rebuild cuts its users into chunks that run as separate Celery tasks. A full rebuild runs each
chunk twice: first it computes the chunk's features and stages them here (``staged``), then, once
the rebuild has learned its scaling, outliers and segments from every chunk's features, it places
and writes the chunk's profiles. An incremental rebuild computes and writes each chunk at once.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from recommendations.models.profiles import ProfileRun

__all__ = ["ProfileRunChunk"]


class ProfileRunChunk(models.Model):
    """The users ``user_keys`` of one rebuild (consecutive primary keys, ``first_user``..``last_user``)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        STAGED = "staged", _("Features computed")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    run = models.ForeignKey(
        ProfileRun, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("run")
    )
    index = models.PositiveIntegerField(verbose_name=_("index"))
    # Primary keys as text: the user model is swappable and its key may be anything ordered.
    first_user = models.CharField(max_length=64, blank=True, default="", verbose_name=_("first user"))
    last_user = models.CharField(max_length=64, blank=True, default="", verbose_name=_("last user"))
    #: every planned user's primary key as text, in key order: a rerun profiles exactly these users
    user_keys = models.JSONField(default=list, blank=True, verbose_name=_("users"))
    planned = models.PositiveIntegerField(default=0, verbose_name=_("planned users"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=_("status")
    )
    profiles = models.PositiveIntegerField(default=0, verbose_name=_("profiles written"))
    outliers = models.PositiveIntegerField(default=0, verbose_name=_("outliers"))
    tagged = models.PositiveIntegerField(default=0, verbose_name=_("tagged"))
    without_events = models.PositiveIntegerField(default=0, verbose_name=_("users without events"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    propensity_source = models.CharField(
        max_length=20, blank=True, default="", verbose_name=_("propensity from")
    )
    #: notes on the whole chunk (codes, e.g. no active model), as ``ProfileRun.summary["notes"]``
    notes = models.JSONField(default=list, blank=True, verbose_name=_("notes"))
    #: the features computed by a full rebuild's first pass (``services.profiles.staging``),
    #: dropped once the profiles are written
    staged = models.BinaryField(null=True, blank=True, editable=False, verbose_name=_("staged features"))
    #: what the rebuild's fit decided for each user of the chunk: ``{"labels": [...], "outliers": [...]}``
    placement = models.JSONField(default=dict, blank=True, verbose_name=_("segment labels and outlier flags"))
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    error = models.TextField(blank=True, default="", verbose_name=_("error"))
    seconds = models.FloatField(default=0.0, verbose_name=_("seconds"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="rec_profilerun_chunk_unique")]
        verbose_name = _("profile rebuild chunk")
        verbose_name_plural = _("profile rebuild chunks")

    def __str__(self) -> str:
        return f"chunk {self.index} of profile run {self.run_id} ({self.status})"
