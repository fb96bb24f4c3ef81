"""The recommender dashboard at /admin/recommendations/dashboard/ (a proxy model gives it its URL
and its link on the admin index): events per day, CTR and conversion per placement and model
version, segment sizes and model metrics across versions, as server-side SVG charts.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext

from recommendations.models import Dashboard
from recommendations.services.profiles import charts
from recommendations.services.profiles import dashboard as figures


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        dates, per_type = figures.events_per_day()
        versions, rates, counts = figures.model_metrics()
        performance = figures.placement_performance()
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Recommender dashboard"),
            "opts": self.model._meta,
            "events_chart": charts.line_chart(dates, per_type),
            "segments_chart": charts.bar_chart(figures.segment_sizes(), unit=" " + gettext("shoppers")),
            "metrics_chart": charts.line_chart(versions, rates, unit="%"),
            "counts_chart": charts.line_chart(versions, counts, height=160),
            "ctr_chart": charts.bar_chart(
                {
                    figures.placement_label(row["placement"], row["model_version"]): round(
                        100 * (row["ctr"] or 0), 2
                    )
                    for row in performance
                },
                unit="%",
            ),
            "performance": performance,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/recommendations/dashboard/dashboard.html", context)
