"""Online experiments: an A/B test of a placement's list between arms, and who is in which arm.

An ``Experiment`` runs on one placement (``"home"``, ``"similar"``, ``"cart"`` ...) from
``starts_at`` until ``ends_at``; its ``ExperimentArm`` rows split the traffic by share (percent,
summing to 100) and each serves one strategy: a pinned model version, popularity, or
co-visitation. An ``ExperimentAssignment`` is one shopper's arm, stored at their first
exposure; it is personal data (a user id or a visitor id), removed by erasure. The logic lives
in ``recommendations.services.experiments``.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["Experiment", "ExperimentArm", "ExperimentAssignment"]

# The placement names the API accepts (``api.serializers.PLACEMENT_PATTERN``).
PLACEMENT_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9_.:-]{1,64}$", _("Letters, digits and _ . : - only (at most 64).")
)


def new_salt() -> str:
    """A random salt: each experiment splits shoppers independently of every other one."""
    return secrets.token_hex(8)


class Experiment(models.Model):
    """An A/B test on one placement; the first arm (lowest id) is the baseline of the comparisons."""

    class Audience(models.TextChoices):
        EVERYONE = "everyone", _("Everyone")
        LOGGED_IN = "logged_in", _("Logged-in shoppers")
        ANONYMOUS = "anonymous", _("Anonymous visitors")

    name = models.CharField(max_length=120, verbose_name=_("name"))
    placement = models.CharField(
        max_length=64,
        validators=[PLACEMENT_VALIDATOR],
        help_text=_(
            "The block the experiment runs on: home, default (the API's list), similar, "
            "bought_together, cart, or a placement your templates name."
        ),
        verbose_name=_("placement"),
    )
    audience = models.CharField(
        max_length=12, choices=Audience.choices, default=Audience.EVERYONE, verbose_name=_("audience")
    )
    salt = models.CharField(
        max_length=32,
        default=new_salt,
        editable=False,
        help_text=_("Mixed into each shopper's hash: every experiment splits shoppers anew."),
        verbose_name=_("salt"),
    )
    starts_at = models.DateTimeField(default=timezone.now, verbose_name=_("starts at"))
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: runs until stopped."), verbose_name=_("ends at")
    )
    created_by = models.CharField(max_length=150, blank=True, default="", verbose_name=_("created by"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    # Aggregates kept when the experiment ended: retention may then delete its impressions.
    final_results = models.JSONField(null=True, blank=True, editable=False, verbose_name=_("final results"))
    finalized_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("finalized at"))
    promoted_arm = models.ForeignKey(
        "ExperimentArm",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("promoted arm"),
    )
    promoted_by = models.CharField(
        max_length=150, blank=True, default="", editable=False, verbose_name=_("promoted by")
    )
    promoted_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("promoted at"))

    class Meta:
        ordering = ["-starts_at", "-pk"]
        indexes = [models.Index(fields=["placement", "starts_at"], name="rec_experiment_placement")]
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")

    def __str__(self) -> str:
        return f"{self.name} ({self.placement})"

    def is_running(self, at: object = None) -> bool:
        """True between the start and the end (``at`` defaults to now)."""
        now = at or timezone.now()
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)  # type: ignore[operator]

    @property
    def status(self) -> str:
        """One of "scheduled", "running", "ended": a code (the admin shows it translated)."""
        now = timezone.now()
        if now < self.starts_at:
            return "scheduled"
        return "running" if self.is_running(now) else "ended"


class ExperimentArm(models.Model):
    """One arm: its share of the experiment's shoppers and what it serves them."""

    class Strategy(models.TextChoices):
        MODEL = "model", _("Behaviour network (pinned model version)")
        POPULARITY = "popularity", _("Popularity only")
        COVISITATION = "covisitation", _("Co-visitation only (no network)")

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="arms", verbose_name=_("experiment")
    )
    name = models.CharField(max_length=64, verbose_name=_("name"))
    strategy = models.CharField(
        max_length=16, choices=Strategy.choices, default=Strategy.MODEL, verbose_name=_("strategy")
    )
    model_version = models.ForeignKey(
        "recommendations.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The version this arm serves, whatever the nightly promotion activates."),
        verbose_name=_("model version"),
    )
    share = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Percent of the experiment's shoppers; the arms' shares sum to 100."),
        verbose_name=_("share (%)"),
    )
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("stopped at"))
    stopped_reason = models.TextField(
        blank=True, default="", editable=False, verbose_name=_("stopped reason")
    )

    class Meta:
        ordering = ["experiment", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="rec_arm_unique_name"),
        ]
        verbose_name = _("arm")
        verbose_name_plural = _("arms")

    def __str__(self) -> str:
        return self.name


class ExperimentAssignment(models.Model):
    """One shopper's arm in one experiment, stored at their first exposure (personal data).

    An anonymous visitor's row gets the user at login (the same person, the same unit of
    analysis); a user's own row has no visitor id.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("experiment")
    )
    arm = models.ForeignKey(
        ExperimentArm, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("arm")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendations_assignments",
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    assigned_at = models.DateTimeField(default=timezone.now, verbose_name=_("assigned at"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "user"], condition=Q(user__isnull=False), name="rec_assignment_user"
            ),
            models.UniqueConstraint(
                fields=["experiment", "visitor_id"],
                condition=~Q(visitor_id=""),
                name="rec_assignment_visitor",
            ),
        ]
        indexes = [models.Index(fields=["visitor_id"], name="rec_assignment_visitor_id")]
        verbose_name = _("experiment assignment")
        verbose_name_plural = _("experiment assignments")

    def __str__(self) -> str:
        return f"assignment {self.pk} to {self.arm_id}"
