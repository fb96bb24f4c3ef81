"""Admin of shadow models: staff choose a candidate version and its sample share; the results
are shown here and on the model version's page, next to its offline metrics."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy

from recommendations.models import ModelVersion, ShadowRun
from recommendations.services.shadow.results import ShadowResults, shadow_results
from recommendations.services.shadow.sampling import forget_runs

__all__ = ["ShadowRunAdmin", "shadow_results_html"]


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _rows(figures: ShadowResults) -> list[tuple[str, str]]:
    return [
        (gettext("requests scored"), str(figures.requests)),
        (gettext("requests the candidate failed to score"), str(figures.failures)),
        (gettext("mean overlap at 10 with the served list"), _number(figures.mean_overlap, 3)),
        (gettext("clicks on the served lists"), str(figures.clicks)),
        (gettext("clicked item in the served list"), str(figures.clicks_in_served)),
        (gettext("clicked item in the shadow list"), str(figures.clicks_in_shadow)),
        (gettext("mean rank of the clicked item in the served list"), _number(figures.mean_rank_served)),
        (gettext("mean rank of the clicked item in the shadow list"), _number(figures.mean_rank_shadow)),
    ]


def results_table(run: ShadowRun) -> str:
    """One run's figures as an HTML table."""
    body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", _rows(shadow_results(run)))
    return format_html("<table>{}</table>", body)


def shadow_results_html(version: ModelVersion) -> str:
    """Every shadow run of ``version``: its placement, share, state and figures."""
    runs = list(version.shadow_runs.order_by("-created_at"))
    if not runs:
        return gettext("Not shadowed on live requests yet (add a shadow run to compare it before it serves).")
    parts = []
    for run in runs:
        state = gettext("active") if run.is_active else gettext("stopped")
        title = gettext("%(placement)s, %(share)s %% of requests, %(state)s") % {
            "placement": run.placement or gettext("every placement"),
            "share": f"{run.sample_share * 100:g}",
            "state": state,
        }
        parts.append(format_html("<h4>{}</h4>{}", title, results_table(run)))
    return format_html_join("", "{}", ((part,) for part in parts))


@admin.register(ShadowRun)
class ShadowRunAdmin(admin.ModelAdmin):
    """A candidate version's shadow scoring: its share of live lists and what it would have served."""

    list_display = ("model_version", "placement", "sample_share", "is_active", "failures", "created_at")
    list_filter = ("is_active",)
    date_hierarchy = "created_at"
    list_select_related = ("model_version",)
    raw_id_fields = ("model_version",)
    readonly_fields = ("failures", "last_error", "created_at", "results")
    fields = (
        "model_version",
        "placement",
        "sample_share",
        "is_active",
        "failures",
        "last_error",
        "created_at",
        "results",
    )

    @admin.display(description=gettext_lazy("results"))
    def results(self, obj: ShadowRun) -> str:
        return results_table(obj) if obj.pk else "—"

    def save_model(self, request: HttpRequest, obj: ShadowRun, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        transaction.on_commit(forget_runs)

    def delete_model(self, request: HttpRequest, obj: ShadowRun) -> None:
        super().delete_model(request, obj)
        transaction.on_commit(forget_runs)
