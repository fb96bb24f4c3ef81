"""User profiles for staff: segments, tags with reasons, propensity, outlier flags.

Rebuilt in batch by ``recommendations.services.profiles.rebuild_profiles``; never edited by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

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
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.FULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    users = models.PositiveIntegerField(default=0)
    k = models.PositiveSmallIntegerField(null=True, blank=True)
    silhouette = models.FloatField(null=True, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "profile run"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} profile run #{self.pk} ({self.status})"


class Segment(models.Model):
    """One K-means segment of a full run, named after what distinguishes its centre."""

    run = models.ForeignKey(ProfileRun, on_delete=models.CASCADE, related_name="segments")
    number = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    size = models.PositiveIntegerField(default=0)
    # {feature: {"mean": segment mean, "overall": population mean, "z": centre in scaled units}}
    centre = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="rec_segment_run_number")]

    def __str__(self) -> str:
        return f"{self.number}: {self.name}"


class UserProfile(models.Model):
    """The profile of one registered user (primary key = the user's id)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="recommendation_profile",
    )
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="profiles"
    )
    # [{"label", "weight", "description", "reasons": [{"feature", "value", "operator", "threshold"}]}]
    tags = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=dict, blank=True)
    propensity = models.FloatField(null=True, blank=True)
    # "model" (the active behaviour network's head) or "heuristic" (no active model).
    propensity_source = models.CharField(max_length=20, blank=True, default="")
    is_outlier = models.BooleanField(default=False)
    outlier_reason = models.CharField(max_length=255, blank=True, default="")
    last_activity_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    # Sentences explaining what is missing or estimated for this user.
    notes = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "user profile"
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

    def __str__(self) -> str:
        return f"profile of user {self.user_id}"

    @property
    def tag_labels(self) -> list[str]:
        return [tag["label"] for tag in self.tags or []]


class ProfileTag(models.Model):
    """One tag of one profile, as a row: the admin's tag filter is an indexed lookup on 100k profiles."""

    profile = models.ForeignKey(UserProfile, on_delete=models.CASCADE, related_name="tag_rows")
    label = models.CharField(max_length=120)
    weight = models.FloatField(default=1.0)

    class Meta:
        verbose_name = "profile tag"
        constraints = [models.UniqueConstraint(fields=["label", "profile"], name="rec_profiletag_unique")]

    def __str__(self) -> str:
        return self.label


class Dashboard(ProfileRun):
    """Not data: gives the recommender dashboard its admin URL and its place on the admin index."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
