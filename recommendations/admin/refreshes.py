"""Admin of the list refreshes (read-only): each refresh with its chunks done out of the total."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from recommendations.models import ListRefresh, ListRefreshChunk


class ReadOnly:
    """Refreshes are written by the refresh only: the admin shows them, never edits them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ChunkInline(ReadOnly, admin.TabularInline):
    model = ListRefreshChunk
    extra = 0
    fields = (
        "index",
        "first_user",
        "last_user",
        "planned",
        "status",
        "users",
        "failed_users",
        "model_version",
        "attempts",
        "seconds",
        "error",
    )
    readonly_fields = fields


@admin.register(ListRefresh)
class ListRefreshAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "started_at",
        "progress",
        "users",
        "failed_users",
        "model_version",
        "seconds",
    )
    list_filter = ("status",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "status",
        "progress",
        "model_version",
        "chunk_users",
        "users",
        "failed_users",
        "clock",
        "timings",
        "seconds",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    exclude = ("chunks_total",)
    inlines = (ChunkInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        done = Count("chunks", filter=Q(chunks__status=ListRefreshChunk.Status.DONE))
        return super().get_queryset(request).annotate(done_chunks=done)

    @admin.display(description=_("chunks done"))
    def progress(self, obj: ListRefresh) -> str:
        done = getattr(obj, "done_chunks", None)
        return f"{obj.chunks_done if done is None else done}/{obj.chunks_total}"
