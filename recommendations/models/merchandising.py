"""Merchandising: staff rules that pin, boost, bury or exclude items and categories per placement.

A rule is applied to every served list of its placement (or of all placements) between its
start and its end, after the model and before the list is recorded; the list's impression keeps
the ids of the rules that applied. The logic lives in ``recommendations.services.merchandising``
(reading and validating rules) and ``recommendations.core.merchandising`` (the ranking rule).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recommendations.models.experiments import PLACEMENT_VALIDATOR

__all__ = ["MerchandisingRule"]

# Places a boost or a bury may move an item (and candidates read beyond a list's end for boosts).
MAX_STRENGTH = 50


class MerchandisingRule(models.Model):
    """One rule: a placement (or all), an action, a target (an item or a category) and a window."""

    class Action(models.TextChoices):
        PIN = "pin", _("Pin (at a position)")
        BOOST = "boost", _("Boost (move up)")
        BURY = "bury", _("Bury (move down)")
        EXCLUDE = "exclude", _("Exclude (never show)")

    placement = models.CharField(
        max_length=64,
        blank=True,
        default="",
        validators=[PLACEMENT_VALIDATOR],
        help_text=_(
            "The block the rule applies to: home, default (the API's list), similar, "
            "bought_together, cart, popular, or a placement your templates name. Empty: every placement."
        ),
        verbose_name=_("placement"),
    )
    action = models.CharField(max_length=8, choices=Action.choices, verbose_name=_("action"))
    item_key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text=_("The item's key (the demo: its SKU). Give an item or a category."),
        verbose_name=_("item"),
    )
    category_key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text=_("The category's key as the shop's adapter gives it (the demo: its slug)."),
        verbose_name=_("category"),
    )
    position = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Pins only: the 1-based position the item is shown at."),
        verbose_name=_("position"),
    )
    strength = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STRENGTH)],
        help_text=_("Boosts and buries: how many places the item moves up or down."),
        verbose_name=_("strength"),
    )
    starts_at = models.DateTimeField(default=timezone.now, verbose_name=_("starts at"))
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: applies until switched off."), verbose_name=_("ends at")
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))
    created_by = models.CharField(
        max_length=150, blank=True, default="", editable=False, verbose_name=_("created by")
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    note = models.TextField(blank=True, default="", verbose_name=_("note"))

    class Meta:
        verbose_name = _("merchandising rule")
        verbose_name_plural = _("merchandising rules")
        ordering = ["placement", "action", "position", "pk"]
        indexes = [models.Index(fields=["active", "ends_at"], name="rec_merch_rule_in_force")]

    def __str__(self) -> str:
        target = self.item_key or self.category_key
        where = self.placement or _("all placements")
        return f"{self.get_action_display()} {target} ({where})"
