"""Admin of the model registry: training runs (read-only) and model versions with their actions.

The actions only call services: "activate" and "roll back" go through
``recommendations.services.registry``; "retrain" only enqueues the Celery task after the
admin's transaction commits (training never runs inside a web request).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from recommendations.admin import version_tables
from recommendations.admin.shadow import shadow_results_html
from recommendations.conf import recommender_settings
from recommendations.models import ModelVersion, TrainingRun
from recommendations.services.model_choices import version_choices


def _format(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _staff_name(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Runs are written by the training service only: the admin shows them, never edits them."""

    list_display = (
        "id",
        "status",
        "triggered_by",
        "started_at",
        "duration",
        "event_count",
        "user_count",
        "item_count",
        "produced_version",
        "short_error",
    )
    list_filter = ("status", "triggered_by")
    date_hierarchy = "started_at"
    search_fields = ("error", "triggered_by", "celery_task_id", "worker_host")
    readonly_fields = (
        "status",
        "triggered_by",
        "window_days",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "duration",
        "event_count",
        "user_count",
        "item_count",
        "timings_table",
        "error",
        "worker_host",
        "worker_pid",
        "celery_task_id",
        "produced_version",
    )
    fieldsets = (
        (None, {"fields": ("status", "triggered_by", "window_days", "produced_version")}),
        ("Time", {"fields": ("started_at", "finished_at", "heartbeat_at", "duration", "timings_table")}),
        ("Data", {"fields": ("event_count", "user_count", "item_count")}),
        ("Error", {"fields": ("error",)}),
        ("Worker", {"fields": ("worker_host", "worker_pid", "celery_task_id")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration (s)")
    def duration(self, obj: TrainingRun) -> str:
        seconds = obj.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f}"

    @admin.display(description="version")
    def produced_version(self, obj: TrainingRun) -> str:
        version = obj.model_version
        return "—" if version is None else f"v{version.number} ({version.status})"

    @admin.display(description="error")
    def short_error(self, obj: TrainingRun) -> str:
        return obj.error.splitlines()[0][:120] if obj.error else ""

    @admin.display(description="timings (s)")
    def timings_table(self, obj: TrainingRun) -> str:
        if not obj.timings:
            return "—"
        return format_html(
            "<table>{}</table>",
            format_html(
                "".join("<tr><th>{}</th><td>{}</td></tr>" for _ in obj.timings),
                *[part for name, seconds in obj.timings.items() for part in (name, seconds)],
            ),
        )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions with the promotion metric of the new model beside its baselines and predecessor."""

    list_display = (
        "number",
        "status",
        "new_metric",
        "popularity_metric",
        "covisitation_metric",
        "previous_metric",
        "promoted_by",
        "promoted_at",
        "created_at",
    )
    list_filter = ("status",)
    date_hierarchy = "created_at"
    search_fields = ("status_reason", "promoted_by")
    list_select_related = ("training_run", "compared_with")
    actions = ("activate_selected", "roll_back", "retrain")
    readonly_fields = (
        "number",
        "status",
        "status_reason",
        "training_run",
        "artifact_path",
        "sha256",
        "compared_with",
        "replaced_version",
        "promoted_by",
        "promoted_at",
        "created_at",
        "metrics_json",
        "hyperparameters_json",
        "report_json",
        "artifact_files_json",
        "choices_table",
        "shadow_results",
    )
    fieldsets = (
        (None, {"fields": ("number", "status", "status_reason", "training_run")}),
        ("Choices made for this shop", {"fields": ("choices_table",)}),
        ("Promotion", {"fields": ("promoted_by", "promoted_at", "compared_with", "replaced_version")}),
        (
            "Metrics on the run's holdout",
            {
                "fields": ("metrics_json",),
            },
        ),
        (_("Shadow scoring on live requests"), {"fields": ("shadow_results",)}),
        ("Artefact", {"fields": ("artifact_path", "sha256", "artifact_files_json")}),
        ("Training", {"fields": ("hyperparameters_json", "report_json", "created_at")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        # Actions change the registry: staff who may view but not change versions do not see them.
        actions = super().get_actions(request)
        if not request.user.has_perm("recommendations.change_modelversion"):
            return {}
        return actions

    # --- metric columns ---------------------------------------------------------------------

    @staticmethod
    def _metric_name() -> str:
        return recommender_settings.PROMOTION_METRIC

    @admin.display(description="new model")
    def new_metric(self, obj: ModelVersion) -> str:
        return _format(obj.metric(self._metric_name()))

    @admin.display(description="popularity")
    def popularity_metric(self, obj: ModelVersion) -> str:
        return _format(obj.baseline_metric("popularity", self._metric_name()))

    @admin.display(description="co-visitation")
    def covisitation_metric(self, obj: ModelVersion) -> str:
        return _format(obj.baseline_metric("covisitation", self._metric_name()))

    @admin.display(description="previous active")
    def previous_metric(self, obj: ModelVersion) -> str:
        value = obj.active_metric(self._metric_name())
        if value is None or obj.compared_with is None:
            return _format(value)
        return f"{value:.4f} (v{obj.compared_with.number})"

    @admin.display(description=_("metrics against the baselines"))
    def metrics_json(self, obj: ModelVersion) -> str:
        return version_tables.metrics_table(obj)

    @admin.display(description=_("hyperparameters"))
    def hyperparameters_json(self, obj: ModelVersion) -> str:
        return version_tables.key_value_table(obj.hyperparameters)

    @admin.display(description="choices")
    def choices_table(self, obj: ModelVersion) -> str:
        rows = version_choices(obj)
        if not rows:
            return "—"
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            "choice",
            "value",
            "how",
            "validation NDCG@10",
        )
        body = format_html(
            "".join("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>" for _ in rows),
            *[part for row in rows for part in (row.label, row.value, row.how, row.figures)],
        )
        return format_html("<table>{}{}</table>", head, body)

    @admin.display(description=_("shadow results"))
    def shadow_results(self, obj: ModelVersion) -> str:
        return shadow_results_html(obj)

    @admin.display(description=_("training report"))
    def report_json(self, obj: ModelVersion) -> str:
        return version_tables.key_value_table(obj.report)

    @admin.display(description=_("files (SHA-256)"))
    def artifact_files_json(self, obj: ModelVersion) -> str:
        return version_tables.files_table(obj.artifact_files)

    # --- actions ----------------------------------------------------------------------------

    @admin.action(description="Activate the selected version")
    def activate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        from recommendations.services.registry import RegistryError, activate_version

        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = activate_version(versions[0], by=_staff_name(request))
        except RegistryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Model v{version.number} is now active.", messages.SUCCESS)

    @admin.action(description="Roll back to the previously active version")
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> None:
        from recommendations.services.registry import RegistryError, rollback

        try:
            version = rollback(by=_staff_name(request))
        except RegistryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if version is None:
            self.message_user(request, "There is no earlier version to roll back to.", messages.WARNING)
            return
        self.message_user(request, f"Rolled back: model v{version.number} is active again.", messages.SUCCESS)

    @admin.action(description="Retrain now (queued on the training worker)")
    def retrain(self, request: HttpRequest, queryset: QuerySet) -> None:
        from recommendations.tasks import enqueue_retrain

        queued = enqueue_retrain(triggered_by=_staff_name(request))
        if queued is False:
            self.message_user(
                request,
                "The training could not be queued: the task broker is unreachable. Nothing will run; "
                "try again once it is back (the logs have the error).",
                messages.ERROR,
            )
        elif queued is None:
            self.message_user(
                request,
                "A training will be queued when this request's changes are saved; its run appears "
                "under “Training runs”.",
                messages.INFO,
            )
        else:
            self.message_user(
                request, "A training was queued; its run appears under “Training runs”.", messages.SUCCESS
            )
