"""Shadow models: a candidate model version scores a sampled share of live requests unseen.

A ``ShadowRun`` names the candidate version, the placement (blank: every personal list) and the
share of served lists it scores; each scored request is a ``ShadowScore`` holding the list that
was served and the list the candidate would have served, side by side. Clicks are attributed to
them later through the served list's recommendation id (``services.shadow.results``). The logic
lives in ``recommendations.services.shadow``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recommendations.models.experiments import PLACEMENT_VALIDATOR

__all__ = ["ShadowRun", "ShadowScore"]


class ShadowRun(models.Model):
    """One candidate version scoring a share of the live lists of a placement, never shown."""

    model_version = models.ForeignKey(
        "recommendations.ModelVersion",
        on_delete=models.CASCADE,
        related_name="shadow_runs",
        verbose_name=_("candidate model version"),
    )
    placement = models.CharField(
        max_length=64,
        blank=True,
        default="",
        validators=[PLACEMENT_VALIDATOR],
        verbose_name=_("placement"),
        help_text=_("The placement whose lists it shadows; blank for every personal list."),
    )
    sample_share = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("sample share"),
        help_text=_("The share of served lists the candidate scores, from 0 to 1 (0.1 = one in ten)."),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    # requests the candidate could not score (version gone or refused, scoring error): counted, not shown
    failures = models.PositiveIntegerField(default=0, verbose_name=_("failures"))
    last_error = models.TextField(blank=True, default="", verbose_name=_("last error"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("shadow run")
        verbose_name_plural = _("shadow runs")

    def __str__(self) -> str:
        return f"shadow of version {self.model_version_id} on {self.placement or 'every placement'}"


class ShadowScore(models.Model):
    """One served list and the candidate's list for the same request (personal data: the shopper's)."""

    run = models.ForeignKey(ShadowRun, on_delete=models.CASCADE, related_name="scores", verbose_name=_("run"))
    recommendation_id = models.UUIDField(verbose_name=_("recommendation id"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    served_keys = models.JSONField(default=list, verbose_name=_("served items"))
    shadow_keys = models.JSONField(default=list, verbose_name=_("shadow items"))
    overlap_at_10 = models.FloatField(verbose_name=_("overlap at 10"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        constraints = [
            # a redelivered task scores a request once
            models.UniqueConstraint(fields=["run", "recommendation_id"], name="rec_shadow_once"),
        ]
        indexes = [
            models.Index(fields=["run", "created_at"], name="rec_shadow_run_time"),
            models.Index(fields=["user"], name="rec_shadow_user", condition=models.Q(user__isnull=False)),
            models.Index(
                fields=["visitor_id"], name="rec_shadow_visitor", condition=~models.Q(visitor_id="")
            ),
        ]
        verbose_name = _("shadow score")
        verbose_name_plural = _("shadow scores")

    def __str__(self) -> str:
        return f"shadow {self.run_id} of list {self.recommendation_id}"
