"""Serving state: precomputed lists, impressions, item relations, popularity, "not interested".

Items are referenced by their public key string (the item model is swappable).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = ["Impression", "ItemPopularity", "ItemRelation", "NotInterested", "PrecomputedList"]


class PrecomputedList(models.Model):
    """One user's ranked list, scored in batch by ``recommendations.refresh_recommendations``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recommendations_precomputed"
    )
    item_keys = models.JSONField(default=list)
    scores = models.JSONField(default=list)
    reasons = models.JSONField(default=list)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "precomputed list"

    def __str__(self) -> str:
        return f"{len(self.item_keys)} items for user {self.user_id}"


class Impression(models.Model):
    """One served list (not one row per item): the unit of attribution for clicks and purchases."""

    recommendation_id = models.UUIDField(unique=True, default=uuid.uuid4)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendations_impressions",
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    placement = models.CharField(max_length=64, blank=True, default="")
    model_version = models.PositiveIntegerField(null=True, blank=True)
    item_keys = models.JSONField(default=list)
    source = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="rec_impression_time"),
            models.Index(fields=["placement", "created_at"], name="rec_impression_pl_time"),
        ]

    def __str__(self) -> str:
        return f"{self.placement or 'default'} list {self.recommendation_id}"


class ItemRelation(models.Model):
    """A precomputed item-to-item relation ("similar" or "bought_together")."""

    class Kind(models.TextChoices):
        SIMILAR = "similar", "Similar"
        BOUGHT_TOGETHER = "bought_together", "Bought together"

    item_key = models.CharField(max_length=255)
    related_key = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    score = models.FloatField()
    reason = models.CharField(max_length=255, blank=True, default="")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item_key", "kind", "related_key"], name="rec_relation_unique"),
        ]
        indexes = [models.Index(fields=["item_key", "kind", "-score"], name="rec_relation_lookup")]

    def __str__(self) -> str:
        return f"{self.item_key} -{self.kind}-> {self.related_key}"


class ItemPopularity(models.Model):
    """Popularity (event-type weighted) and trending (time-decayed) score of one item."""

    item_key = models.CharField(max_length=255, unique=True)
    category = models.CharField(max_length=255, blank=True, default="")
    category_label = models.CharField(max_length=255, blank=True, default="")
    score = models.FloatField(default=0.0)
    trending = models.FloatField(default=0.0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "item popularity"
        indexes = [models.Index(fields=["category", "-score"], name="rec_popularity_cat")]

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
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    item_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "not interested marks"
        indexes = [
            models.Index(fields=["user", "item_key"], name="rec_notint_user"),
            models.Index(fields=["visitor_id", "item_key"], name="rec_notint_visitor"),
        ]

    def __str__(self) -> str:
        return f"not interested in {self.item_key}"
