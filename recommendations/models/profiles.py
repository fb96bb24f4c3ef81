"""User profiles for staff: segments, tags with reasons, propensity, outlier flags.

Rebuilt in batch by ``recommendations.services.profiles.rebuild_profiles``; never edited by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["ACTIVITY_ORDER", "Dashboard", "ProfileRun", "ProfileTag", "Segment", "UserProfile"]

# Most recently active first, profiles without any activity last (the admin list's order).
ACTIVITY_ORDER = Coalesce(
    "last_activity_at", models.Value(datetime(1970, 1, 1, tzinfo=UTC), output_field=models.DateTimeField())
).desc()


class ProfileRun(models.Model):
    """One rebuild of the profiles, with every learned parameter needed to reuse it.

    ``params`` (JSON) holds the scaling (medians, centres, scales per feature), the
    segment centres, the resolved tag thresholds and the outlier model, so an
    incremental rebuild places new users exactly like the full run did.
    """

    class Kind(models.TextChoices):
        FULL = "full", _("Full")
        INCREMENTAL = "incremental", _("Incremental")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        PARTIAL = "partial", _("Partly done")
        FAILED = "failed", _("Failed")

    class Stage(models.TextChoices):
        """What a running rebuild is doing (see ``services.profiles.fanout``)."""

        FEATURES = "features", _("Computing features")
        FIT = "fit", _("Fitting scaling, outliers and segments")
        PROFILES = "profiles", _("Writing profiles")
        CLOSED = "closed", _("Closed")

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.FULL, verbose_name=_("kind"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.RUNNING, verbose_name=_("status")
    )
    stage = models.CharField(
        max_length=10, choices=Stage.choices, default=Stage.CLOSED, verbose_name=_("stage")
    )
    chunk_users = models.PositiveIntegerField(default=0, verbose_name=_("users per chunk"))
    chunks_total = models.PositiveIntegerField(default=0, verbose_name=_("chunks"))
    #: users of chunks that failed for good: they kept their previous profiles
    failed_users = models.PositiveIntegerField(default=0, verbose_name=_("users not rebuilt"))
    #: the data clock the features count back from (every chunk uses the same)
    clock = models.DateTimeField(null=True, blank=True, verbose_name=_("data clock"))
    #: when the rebuild last made progress (a chunk finished): a running rebuild that has not
    #: moved for the lease (``services.profiles.rebuild.PROFILE_LEASE_SECONDS``) no longer
    #: keeps the next one out
    heartbeat_at = models.DateTimeField(default=timezone.now, verbose_name=_("last progress"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    users = models.PositiveIntegerField(default=0, verbose_name=_("users"))
    k = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("k"))
    silhouette = models.FloatField(null=True, blank=True, verbose_name=_("silhouette"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    params = models.JSONField(default=dict, blank=True, verbose_name=_("params"))
    summary = models.JSONField(default=dict, blank=True, verbose_name=_("summary"))
    error = models.TextField(blank=True, default="", verbose_name=_("error"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("profile run")
        verbose_name_plural = _("profile runs")

    def __str__(self) -> str:
        return _("%(kind)s profile run #%(number)s (%(status)s)") % {
            "kind": self.get_kind_display(),
            "number": self.pk,
            "status": self.get_status_display(),
        }

    @property
    def chunks_done(self) -> int:
        """Chunks whose profiles are written."""
        return self.chunks.filter(status="done").count()


class Segment(models.Model):
    """One K-means segment of a full run, named after what distinguishes its centre.

    ``traits`` holds what distinguishes it as codes and numbers (see
    ``recommendations.core.profiles.segments.describe_segments``), put into the reader's
    language by ``recommendations.services.profiles.explanations``. ``name`` and
    ``description`` are the English sentences of segments built before traits (empty since).
    """

    run = models.ForeignKey(
        ProfileRun, on_delete=models.CASCADE, related_name="segments", verbose_name=_("run")
    )
    number = models.PositiveSmallIntegerField(verbose_name=_("number"))
    name = models.CharField(max_length=200, blank=True, default="", verbose_name=_("name"))
    description = models.TextField(blank=True, default="", verbose_name=_("description"))
    traits = models.JSONField(default=dict, blank=True, verbose_name=_("traits"))
    size = models.PositiveIntegerField(default=0, verbose_name=_("size"))
    # {feature: {"mean": segment mean, "overall": population mean, "z": centre in scaled units}}
    centre = models.JSONField(default=dict, blank=True, verbose_name=_("centre"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="rec_segment_run_number")]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        # Imported here: the services import the models.
        from recommendations.services.profiles.explanations import segment_title

        return segment_title(self.number, self.traits, self.name)


class UserProfile(models.Model):
    """The profile of one registered user (primary key = the user's id)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="recommendation_profile",
        verbose_name=_("user"),
    )
    segment = models.ForeignKey(
        Segment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="profiles",
        verbose_name=_("segment"),
    )
    # [{"label", "weight", "description", "reasons": [{"feature", "value", "operator", "threshold"}]}]
    tags = models.JSONField(default=list, blank=True, verbose_name=_("tags"))
    features = models.JSONField(default=dict, blank=True, verbose_name=_("features"))
    propensity = models.FloatField(null=True, blank=True, verbose_name=_("propensity"))
    # "model" (the active behaviour network's head) or "heuristic" (no active model).
    propensity_source = models.CharField(
        max_length=20, blank=True, default="", verbose_name=_("propensity source")
    )
    is_outlier = models.BooleanField(default=False, verbose_name=_("is outlier"))
    # Why the user is flagged, as compact JSON codes and numbers ('[{"code": feature, "value", "median"}]';
    # "[]": no single feature stands out); an English sentence on profiles built before codes.
    # Text, not a JSON column: the bulk writer streams it as text (see services.profiles.explanations).
    outlier_reason = models.CharField(
        max_length=255, blank=True, default="", verbose_name=_("outlier reason")
    )
    last_activity_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last activity at"))
    updated_at = models.DateTimeField(default=timezone.now, verbose_name=_("updated at"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    # What is missing or estimated for this user: [{"code", "params"}] (an English sentence per
    # note on profiles built before codes), put into words by services.profiles.explanations.
    notes = models.JSONField(default=list, blank=True, verbose_name=_("notes"))

    class Meta:
        verbose_name = _("user profile")
        indexes = [
            # Exactly the admin list's ORDER BY (ACTIVITY_ORDER plus the pk tie-breaker the
            # changelist appends), so a page of 100k profiles is an index scan with LIMIT, no sort.
            # COALESCE instead of NULLS LAST: SQLite cannot put NULLS LAST in an index.
            models.Index(ACTIVITY_ORDER, models.F("user").desc(), name="rec_profile_activity"),
            models.Index(fields=["propensity"], name="rec_profile_propensity"),
            models.Index(fields=["updated_at"], name="rec_profile_updated"),
            models.Index(
                fields=["is_outlier"], name="rec_profile_outlier", condition=models.Q(is_outlier=True)
            ),
        ]
        verbose_name_plural = _("user profiles")

    def __str__(self) -> str:
        return _("profile of %(user)s") % {"user": self.user.get_username()}

    @property
    def tag_labels(self) -> list[str]:
        return [tag["label"] for tag in self.tags or []]


class ProfileTag(models.Model):
    """One tag of one profile, as a row: the admin's tag filter is an indexed lookup on 100k profiles."""

    profile = models.ForeignKey(
        UserProfile, on_delete=models.CASCADE, related_name="tag_rows", verbose_name=_("profile")
    )
    label = models.CharField(max_length=120, verbose_name=_("label"))
    weight = models.FloatField(default=1.0, verbose_name=_("weight"))

    class Meta:
        verbose_name = _("profile tag")
        constraints = [models.UniqueConstraint(fields=["label", "profile"], name="rec_profiletag_unique")]
        verbose_name_plural = _("profile tags")

    def __str__(self) -> str:
        return self.label


class Dashboard(ProfileRun):
    """Not data: gives the recommender dashboard its admin URL and its place on the admin index."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")
