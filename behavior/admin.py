"""Read-only admin for the event log.

Events are an append-only record of what shoppers did, so nobody may add or edit them
in the admin. Deleting is allowed to superusers only: erasure requests and cleaning up
a polluted import sometimes need it, and the rest of the staff can still view.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from behavior.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "event_type",
        "user",
        "visitor_id",
        "item",
        "value",
        "quantity",
        "placement",
        "position",
        "is_bot",
    )
    list_filter = ("event_type", "is_bot", "placement", "occurred_at")
    date_hierarchy = "occurred_at"
    search_fields = ("=event_id", "=visitor_id", "=session_id", "user__username", "=recommendation_id")
    raw_id_fields = ("user", "item")
    list_select_related = ("user", "item")
    show_full_result_count = False  # COUNT(*) over a large log is slow on every page
    list_per_page = 100
    # Newest stored first, straight from the primary key: there is no b-tree on occurred_at
    # (see Event.Meta), and sorting a large log by it would scan the whole table per page.
    ordering = ("-pk",)

    def get_readonly_fields(self, request: HttpRequest, obj: Event | None = None) -> list[str]:
        return [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)
