"""Admin of the merchandising rules: pin, boost, bury or exclude items and categories per placement.

The form refuses what would silently do nothing or do harm, with the reason
(``services.merchandising.validation``): a pin without a position, an end before the start, a
rule naming neither an item nor a category, a pinned item out of stock or inactive. Serving
reads the rules per process; a change here is read again at once in this process and within
``MERCHANDISING_CHECK_SECONDS`` in the others.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from recommendations.models import MerchandisingRule
from recommendations.services.merchandising.rules import forget_rules
from recommendations.services.merchandising.validation import RuleInput, rule_errors


class MerchandisingRuleForm(forms.ModelForm):
    """The rule's fields, checked together (``validation.rule_errors``)."""

    class Meta:
        model = MerchandisingRule
        fields = (
            "placement",
            "action",
            "item_key",
            "category_key",
            "position",
            "strength",
            "starts_at",
            "ends_at",
            "active",
            "note",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        rule = RuleInput(
            action=data.get("action", ""),
            item_key=(data.get("item_key") or "").strip(),
            category_key=(data.get("category_key") or "").strip(),
            position=data.get("position"),
            starts_at=data.get("starts_at"),
            ends_at=data.get("ends_at"),
        )
        data["item_key"], data["category_key"] = rule.item_key, rule.category_key
        for message in rule_errors(rule):
            self.add_error(None, message)
        return data


@admin.register(MerchandisingRule)
class MerchandisingRuleAdmin(admin.ModelAdmin):
    """Merchandising rules: staff create, schedule and switch them off."""

    form = MerchandisingRuleForm
    list_display = (
        "action",
        "target",
        "placement_label",
        "position",
        "strength",
        "starts_at",
        "ends_at",
        "active",
        "created_by",
    )
    list_filter = ("action", "placement", "active")
    date_hierarchy = "starts_at"
    search_fields = ("item_key", "category_key", "placement", "note")
    readonly_fields = ("created_by", "created_at", "updated_at")
    actions = ("switch_off", "switch_on")
    fieldsets = (
        (None, {"fields": ("placement", "action", "item_key", "category_key", "position", "strength")}),
        (gettext_lazy("When"), {"fields": ("starts_at", "ends_at", "active")}),
        (gettext_lazy("Notes"), {"fields": ("note", "created_by", "created_at", "updated_at")}),
    )

    @admin.display(description=gettext_lazy("target"))
    def target(self, obj: MerchandisingRule) -> str:
        if obj.item_key:
            return gettext("item %(key)s") % {"key": obj.item_key}
        return gettext("category %(key)s") % {"key": obj.category_key}

    @admin.display(description=gettext_lazy("placement"), ordering="placement")
    def placement_label(self, obj: MerchandisingRule) -> str:
        return obj.placement or gettext("all placements")

    def save_model(self, request: HttpRequest, obj: MerchandisingRule, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = f"admin:{request.user.get_username()}"[:150]
        super().save_model(request, obj, form, change)

    def _switch(self, request: HttpRequest, queryset: QuerySet, active: bool) -> int:
        # QuerySet.update sends no post_save: the held rules are forgotten here
        changed = queryset.exclude(active=active).update(active=active, updated_at=timezone.now())
        transaction.on_commit(forget_rules)
        return changed

    @admin.action(description=gettext_lazy("Switch the selected rules off"))
    def switch_off(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self._switch(request, queryset, False)
        self.message_user(
            request, gettext("%(count)d rules switched off.") % {"count": count}, messages.SUCCESS
        )

    @admin.action(description=gettext_lazy("Switch the selected rules on"))
    def switch_on(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self._switch(request, queryset, True)
        self.message_user(
            request, gettext("%(count)d rules switched on.") % {"count": count}, messages.SUCCESS
        )
