"""Admin of the online experiments: create one (placement, arms, shares, audience, schedule), read
its results with their always-valid intervals and charts, stop it, and promote the winner.

Every rule and figure comes from ``recommendations.services.experiments``: the forms call its
validation, the results page draws what ``results`` computes, "promote" calls ``lifecycle``.
Once an experiment has started its placement, audience, start and arms are read-only (changing
them would mix two experiments in one result); its end may still move.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy

from recommendations.models import Experiment, ExperimentArm
from recommendations.services.experiments import validation
from recommendations.services.experiments.lifecycle import PromotionRefused, guard_verdict, promote_winner
from recommendations.services.experiments.plans import forget_plans
from recommendations.services.experiments.results import results_of
from recommendations.services.profiles import charts


def _staff_name(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _started(obj: Experiment | None) -> bool:
    return obj is not None and obj.pk is not None and obj.starts_at <= timezone.now()


class ExperimentForm(forms.ModelForm):
    """The experiment's own fields: a stop after the start, no other experiment on its placement then."""

    class Meta:
        model = Experiment
        fields = ("name", "placement", "audience", "starts_at", "ends_at")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        placement = data.get("placement", self.instance.placement)
        starts_at = data.get("starts_at", self.instance.starts_at)
        ends_at = data.get("ends_at", self.instance.ends_at)
        for message in validation.schedule_errors(placement=placement, starts_at=starts_at, ends_at=ends_at):
            self.add_error(None, message)
        if placement and starts_at is not None:
            others = validation.overlapping(
                placement=placement, starts_at=starts_at, ends_at=ends_at, exclude_pk=self.instance.pk
            )
            if others:
                self.add_error(None, validation.overlap_error(others))
        return data


class ArmFormSet(BaseInlineFormSet):
    """The arms together: at least two, shares summing to 100 %, a version for each model arm."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and "share" in form.fields
        ]
        if not kept and _started(self.instance):
            return  # read-only arms of a started experiment
        arms = [
            validation.ArmInput(
                name=form.cleaned_data.get("name", ""),
                strategy=form.cleaned_data.get("strategy", ""),
                model_version=form.cleaned_data.get("model_version"),
                share=form.cleaned_data.get("share") or 0,
            )
            for form in kept
        ]
        errors = validation.arm_errors(arms)
        if errors:
            raise forms.ValidationError(errors)


class ArmInline(admin.TabularInline):
    model = ExperimentArm
    formset = ArmFormSet
    extra = 2
    fields = ("name", "strategy", "model_version", "share", "stopped_at", "stopped_reason")
    readonly_fields = ("stopped_at", "stopped_reason")

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 0 if obj is not None else self.extra

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if _started(obj):
            return self.fields
        return self.readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _started(obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _started(obj) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    inlines = [ArmInline]
    list_display = (
        "name",
        "placement",
        "audience",
        "status_label",
        "starts_at",
        "ends_at",
        "arm_list",
        "results",
    )
    list_filter = ("placement", "audience")
    date_hierarchy = "starts_at"
    search_fields = ("name", "placement")
    actions = ("stop_now",)
    readonly_fields = (
        "salt",
        "created_by",
        "created_at",
        "finalized_at",
        "promoted_arm",
        "promoted_by",
        "promoted_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(self.readonly_fields)
        return ("placement", "audience", "starts_at", *fields) if _started(obj) else fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("arms")

    @admin.display(description=gettext_lazy("status"))
    def status_label(self, obj: Experiment) -> str:
        labels = {"scheduled": gettext("scheduled"), "running": gettext("running"), "ended": gettext("ended")}
        return labels[obj.status]

    @admin.display(description=gettext_lazy("arms"))
    def arm_list(self, obj: Experiment) -> str:
        return ", ".join(f"{arm.name} {arm.share} %" for arm in obj.arms.all())

    @admin.display(description=gettext_lazy("results"))
    def results(self, obj: Experiment) -> str:
        url = reverse("admin:recommendations_experiment_results", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Results"))

    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = _staff_name(request)[:150]
        super().save_model(request, obj, form, change)
        transaction.on_commit(forget_plans)

    @admin.action(description=gettext_lazy("Stop the selected experiments now"))
    def stop_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        now = timezone.now()
        stopped = 0
        for experiment in queryset:
            if experiment.ends_at is None or experiment.ends_at > now:
                experiment.ends_at = max(now, experiment.starts_at)
                experiment.save(update_fields=["ends_at"])
                self.log_change(request, experiment, gettext("Stopped now."))
                stopped += 1
        transaction.on_commit(forget_plans)
        self.message_user(
            request, gettext("%(count)d experiments stopped.") % {"count": stopped}, messages.SUCCESS
        )

    # --- results and promotion ---------------------------------------------------------------

    def get_urls(self) -> list:
        own = [
            path(
                "<int:pk>/results/",
                self.admin_site.admin_view(self.results_view),
                name="recommendations_experiment_results",
            ),
            path(
                "<int:pk>/promote/<int:arm_pk>/",
                self.admin_site.admin_view(self.promote_view),
                name="recommendations_experiment_promote",
            ),
        ]
        return own + super().get_urls()

    def results_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        results = results_of(experiment)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Results of “%(name)s”") % {"name": experiment.name},
            "opts": self.model._meta,
            "experiment": experiment,
            "results": results,
            "charts": results_charts(results),
            "metric_rows": metric_rows(results),
            "may_promote": self._may_promote(request),
        }
        return TemplateResponse(request, "admin/recommendations/experiment/results.html", context)

    def _may_promote(self, request: HttpRequest) -> bool:
        return bool(
            request.user.has_perm("recommendations.change_experiment")
            and request.user.has_perm("recommendations.change_modelversion")
        )

    def promote_view(self, request: HttpRequest, pk: int, arm_pk: int) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        arm = get_object_or_404(
            ExperimentArm.objects.select_related("model_version"), pk=arm_pk, experiment=experiment
        )
        if not self._may_promote(request):
            raise PermissionDenied
        results_url = reverse("admin:recommendations_experiment_results", args=[experiment.pk])
        if arm.model_version is None:
            self.message_user(
                request,
                gettext("This arm pins no model version: there is nothing to promote."),
                messages.ERROR,
            )
            return HttpResponseRedirect(results_url)
        if request.method == "POST":
            try:
                promotion = promote_winner(experiment, arm, by=_staff_name(request))
            except PromotionRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(results_url)
            note = gettext("Promoted arm “%(arm)s”: model v%(number)d is active.") % {
                "arm": arm.name,
                "number": promotion.version.number,
            }
            self.log_change(request, experiment, note)
            self.message_user(request, note, messages.SUCCESS)
            if not promotion.verdict.promote:
                self.message_user(
                    request,
                    gettext("The promotion guard had advised against it: %(reason)s")
                    % {"reason": promotion.verdict.reason},
                    messages.WARNING,
                )
            return HttpResponseRedirect(results_url)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Promote arm “%(arm)s”?") % {"arm": arm.name},
            "opts": self.model._meta,
            "experiment": experiment,
            "arm": arm,
            "verdict": guard_verdict(arm.model_version),
            "results_url": results_url,
        }
        return TemplateResponse(request, "admin/recommendations/experiment/promote.html", context)


def results_charts(results: dict[str, Any]) -> dict[str, Any]:
    """Server-side SVG charts of the results over time: shoppers, conversion (%), revenue per shopper."""
    days = results.get("days") or []
    arms = results.get("arms") or []
    return {
        "shoppers": charts.line_chart(days, {arm["name"]: arm["shoppers_series"] for arm in arms}),
        "conversion": charts.line_chart(
            days, {arm["name"]: [100 * v for v in arm["metrics"]["conversion"]["series"]] for arm in arms}
        ),
        "revenue": charts.line_chart(
            days, {arm["name"]: arm["metrics"]["revenue_per_shopper"]["series"] for arm in arms}
        ),
    }


def metric_labels() -> dict[str, str]:
    """The per-shopper metrics' names in the active language."""
    return {
        "click_rate": gettext("click rate (shoppers who clicked)"),
        "add_to_cart_rate": gettext("add-to-cart rate"),
        "conversion": gettext("conversion (shoppers who bought)"),
        "revenue_per_shopper": gettext("revenue per shopper"),
    }


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if name == "revenue_per_shopper" else f"{100 * value:.2f} %"


def _range(name: str, interval: dict[str, Any] | None) -> str:
    if not interval:
        return "—"
    return f"[{_value(name, interval['lower'])}, {_value(name, interval['upper'])}]"


def metric_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric and arm, formatted for the results table (rates in %, revenue in money)."""
    rows = []
    for name, label in metric_labels().items():
        for arm in results.get("arms") or []:
            metric = arm["metrics"][name]
            versus = metric["vs_baseline"]
            rows.append(
                {
                    "metric": label,
                    "arm": arm["name"],
                    "value": _value(name, metric["mean"]),
                    "interval": _range(name, metric["interval"]),
                    "difference": _value(name, versus["estimate"]) if versus else "",
                    "difference_interval": _range(name, versus) if versus else "",
                    "p_value": f"{versus['p_value']:.4f}" if versus else "",
                    "significant": bool(versus and versus["significant"]),
                }
            )
    return rows
