"""Admin of the profile rebuilds (read-only): each run with its chunks done, its summary and chunks."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from recommendations.admin.refreshes import ReadOnly
from recommendations.models import ProfileRun, ProfileRunChunk
from recommendations.services.profiles import explanations


class ProfileRunChunkInline(ReadOnly, admin.TabularInline):
    model = ProfileRunChunk
    extra = 0
    fields = (
        "index",
        "first_user",
        "last_user",
        "planned",
        "status",
        "profiles",
        "outliers",
        "tagged",
        "model_version",
        "attempts",
        "seconds",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # the staged features (megabytes per chunk while a rebuild runs) and the key lists are not shown
        return super().get_queryset(request).defer("staged", "user_keys", "placement")


@admin.register(ProfileRun)
class ProfileRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "kind",
        "status",
        "stage",
        "progress",
        "users",
        "failed_users",
        "k",
        "silhouette",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [
        "kind",
        "status",
        "stage",
        "progress",
        "users",
        "failed_users",
        "chunk_users",
        "k",
        "silhouette",
        "model_version",
        "clock",
        "created_at",
        "heartbeat_at",
        "finished_at",
        "summary_rows",
        "error",
    ]
    exclude = ["params", "summary", "chunks_total"]
    inlines = (ProfileRunChunkInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        done = Count("chunks", filter=Q(chunks__status=ProfileRunChunk.Status.DONE))
        # params hold the learned model (large JSON): never read for the list
        return super().get_queryset(request).defer("params").annotate(done_chunks=done)

    @admin.display(description=_("chunks done"))
    def progress(self, obj: ProfileRun) -> str:
        done = getattr(obj, "done_chunks", None)
        return f"{obj.chunks_done if done is None else done}/{obj.chunks_total}"

    @admin.display(description=_("summary"))
    def summary_rows(self, obj: ProfileRun) -> str:
        rows = explanations.run_summary_rows(obj.summary)
        if not rows:
            return "–"
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
