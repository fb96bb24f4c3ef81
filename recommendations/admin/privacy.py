"""Privacy in the admin: a "forget" action on the user admin, erasure audit and tombstones read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from recommendations.models import ErasedSubject, ErasureAudit
from recommendations.services.privacy import forget_user

User = get_user_model()


@admin.action(
    description="Forget selected users (erase recommender data, keep out of training)", permissions=["delete"]
)
def forget_selected_users(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    """Erase every selected user's recommender data; the accounts themselves stay."""
    by = f"admin:{request.user.get_username()}"
    total = 0
    for user in queryset:
        total += forget_user(user, requested_by=by).total
    modeladmin.message_user(
        request,
        f"Erased {queryset.count()} user(s): {total} row(s) deleted; see “Erasure audit records”.",
        messages.SUCCESS,
    )


# Re-register the project's user admin with the action appended (whatever class it was).
_current = admin.site._registry.get(User)
_base: type[admin.ModelAdmin] = type(_current) if _current is not None else UserAdmin
if _current is not None:
    admin.site.unregister(User)


@admin.register(User)
class PrivacyUserAdmin(_base):  # type: ignore[misc, valid-type]
    actions = [*(getattr(_base, "actions", None) or []), forget_selected_users]


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ErasureAudit)
class ErasureAuditAdmin(_ReadOnly):
    list_display = ("created_at", "short_hash", "requested_by", "visitor_count", "counts")
    list_filter = ("created_at",)
    date_hierarchy = "created_at"
    search_fields = ("subject_hash", "requested_by")
    readonly_fields = ("subject_hash", "requested_by", "counts", "visitor_count", "created_at")

    @admin.display(description="subject")
    def short_hash(self, obj: ErasureAudit) -> str:
        return obj.subject_hash[:12] + "…"


@admin.register(ErasedSubject)
class ErasedSubjectAdmin(_ReadOnly):
    list_display = ("erased_at", "kind", "subject_hash")
    list_filter = ("kind",)
    readonly_fields = ("kind", "subject_hash", "erased_at")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # deleting a tombstone would let the person's events back in
