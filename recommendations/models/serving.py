"""Serving state: precomputed lists, impressions, item relations, popularity, "not interested".

Items are referenced by their public key string (the item model is swappable).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["Impression", "ItemPopularity", "ItemRelation", "NotInterested", "PrecomputedList"]


class PrecomputedList(models.Model):
    """One user's ranked list, scored in batch by ``recommendations.refresh_recommendations``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="recommendations_precomputed",
        verbose_name=_("user"),
    )
    item_keys = models.JSONField(default=list, verbose_name=_("item keys"))
    scores = models.JSONField(default=list, verbose_name=_("scores"))
    reasons = models.JSONField(default=list, verbose_name=_("reasons"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    class Meta:
        verbose_name = _("precomputed list")
        verbose_name_plural = _("precomputed lists")

    def __str__(self) -> str:
        return f"{len(self.item_keys)} items for user {self.user_id}"


class Impression(models.Model):
    """One served list (not one row per item): the unit of attribution for clicks and purchases."""

    recommendation_id = models.UUIDField(unique=True, default=uuid.uuid4, verbose_name=_("recommendation id"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendations_impressions",
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    placement = models.CharField(max_length=64, blank=True, default="", verbose_name=_("placement"))
    model_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("model version"))
    item_keys = models.JSONField(default=list, verbose_name=_("item keys"))
    source = models.CharField(max_length=20, blank=True, default="", verbose_name=_("source"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    # A list served inside an experiment: which one, which arm, and the shopper's assignment
    # (the unit of analysis); all empty outside experiments.
    experiment = models.ForeignKey(
        "recommendations.Experiment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="impressions",
        db_index=False,
        verbose_name=_("experiment"),
    )
    arm = models.ForeignKey(
        "recommendations.ExperimentArm",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="impressions",
        db_index=False,
        verbose_name=_("arm"),
    )
    assignment = models.ForeignKey(
        "recommendations.ExperimentAssignment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="impressions",
        db_index=False,
        verbose_name=_("assignment"),
    )
    # The merchandising rules that applied to the list (ids; empty when none did), so results
    # and off-policy replay can tell the model's order from the one staff imposed.
    merchandising_rule_ids = models.JSONField(null=True, blank=True, verbose_name=_("merchandising rules"))

    # Exploration (RECOMMENDER["EXPLORATION_SHARE"]): the probability with which each shown item
    # was put at its position, in the order of item_keys; null when the list was not explorable.
    propensities = models.JSONField(null=True, blank=True, verbose_name=_("propensities"))

    class Meta:
        indexes = [
            # only lists served inside an experiment: its results, retention, deletes of its rows
            models.Index(
                fields=["experiment", "created_at"],
                name="rec_impression_experiment",
                condition=models.Q(experiment__isnull=False),
            ),
            models.Index(
                fields=["assignment"],
                name="rec_impression_assignment",
                condition=models.Q(assignment__isnull=False),
            ),
            models.Index(fields=["arm"], name="rec_impression_arm", condition=models.Q(arm__isnull=False)),
            models.Index(fields=["created_at"], name="rec_impression_time"),
            models.Index(fields=["placement", "created_at"], name="rec_impression_pl_time"),
        ]
        verbose_name = _("impression")
        verbose_name_plural = _("impressions")

    def __str__(self) -> str:
        return f"{self.placement or 'default'} list {self.recommendation_id}"


class ItemRelation(models.Model):
    """A precomputed item-to-item relation ("similar" or "bought_together")."""

    class Kind(models.TextChoices):
        SIMILAR = "similar", _("Similar")
        BOUGHT_TOGETHER = "bought_together", _("Bought together")

    item_key = models.CharField(max_length=255, verbose_name=_("item key"))
    related_key = models.CharField(max_length=255, verbose_name=_("related key"))
    kind = models.CharField(max_length=20, choices=Kind.choices, verbose_name=_("kind"))
    score = models.FloatField(verbose_name=_("score"))
    reason = models.CharField(max_length=255, blank=True, default="", verbose_name=_("reason"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item_key", "kind", "related_key"], name="rec_relation_unique"),
        ]
        indexes = [models.Index(fields=["item_key", "kind", "-score"], name="rec_relation_lookup")]
        verbose_name = _("item relation")
        verbose_name_plural = _("item relations")

    def __str__(self) -> str:
        return f"{self.item_key} -{self.kind}-> {self.related_key}"


class ItemPopularity(models.Model):
    """Popularity (event-type weighted) and trending (time-decayed) score of one item."""

    item_key = models.CharField(max_length=255, unique=True, verbose_name=_("item key"))
    category = models.CharField(max_length=255, blank=True, default="", verbose_name=_("category"))
    category_label = models.CharField(
        max_length=255, blank=True, default="", verbose_name=_("category label")
    )
    score = models.FloatField(default=0.0, verbose_name=_("score"))
    trending = models.FloatField(default=0.0, verbose_name=_("trending"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    class Meta:
        verbose_name_plural = _("item popularity")
        indexes = [models.Index(fields=["category", "-score"], name="rec_popularity_cat")]
        verbose_name = _("item popularity")

    def __str__(self) -> str:
        return f"{self.item_key}: {self.score:.2f}"


class NotInterested(models.Model):
    """A shopper's "not interested" mark on one item (user, or anonymous visitor)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendations_not_interested",
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    item_key = models.CharField(max_length=255, verbose_name=_("item key"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("not interested marks")
        indexes = [
            models.Index(fields=["user", "item_key"], name="rec_notint_user"),
            models.Index(fields=["visitor_id", "item_key"], name="rec_notint_visitor"),
        ]
        verbose_name = _("not interested")

    def __str__(self) -> str:
        return f"not interested in {self.item_key}"
