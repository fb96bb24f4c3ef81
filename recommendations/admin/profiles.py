"""Admin of user profiles and segments (staff only; fast on 100k profiles).

The list reads one page of profiles with their user and segment in one query (tags come
from the profile's own JSON, so no query per row), the tag filter is an indexed EXISTS on
ProfileTag, and the full result count is never computed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from recommendations.models import ProfileRun, ProfileTag, Segment, UserProfile
from recommendations.models.profiles import ACTIVITY_ORDER
from recommendations.services.profiles import explanations, rebuild_profiles
from recommendations.services.profiles.detail import profile_detail_context
from recommendations.services.profiles.export import export_profiles
from recommendations.services.profiles.texts import feature_label, render_tags, tag_key_label


class TagFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Labels and counts recorded by the last run: no scan of the tag table per page view.
        run = (
            ProfileRun.objects.filter(status__in=[ProfileRun.Status.COMPLETED, ProfileRun.Status.PARTIAL])
            .order_by("-created_at", "-pk")
            .only("summary")  # params hold the learned model (large JSON): never parse it here
            .first()
        )
        counts = (run.summary or {}).get("tag_counts", {}) if run else {}
        return [(key, f"{tag_key_label(key)} ({count})") for key, count in sorted(counts.items())]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        return queryset.filter(Exists(ProfileTag.objects.filter(profile=OuterRef("pk"), label=self.value())))


class PropensityBandFilter(admin.SimpleListFilter):
    title = _("propensity")
    parameter_name = "propensity"
    BANDS = {"low": (0.0, 0.2), "medium": (0.2, 0.5), "high": (0.5, 0.8), "very-high": (0.8, 1.01)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("low", gettext("under 20%")),
            ("medium", "20–50%"),
            ("high", "50–80%"),
            ("very-high", gettext("80% and more")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        band = self.BANDS.get(self.value() or "")
        if band is None:
            return queryset
        return queryset.filter(propensity__gte=band[0], propensity__lt=band[1])


class SegmentFilter(admin.SimpleListFilter):
    """Segments of the current run only (old runs' segments are deleted; this avoids a join)."""

    title = _("segment")
    parameter_name = "segment__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        segments = Segment.objects.order_by("number").values_list("pk", "number", "traits", "name")
        return [
            (str(pk), explanations.segment_title(number, traits, name))
            for pk, number, traits, name in segments
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(segment_id=self.value()) if self.value() else queryset


class EstimatedCountPaginator(Paginator):
    """Unfiltered lists on Postgres count with the planner's row estimate (no scan of 100k rows).

    A filtered list still counts exactly: its filters are indexed and staff expect exact
    numbers for "how many high-propensity users". The estimate is refreshed by autovacuum /
    ANALYZE; when it is unknown (-1 or 0 on a never-analysed table) the exact count is used.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [connection.ops.quote_name(queryset.model._meta.db_table)],
                    )
                    row = cursor.fetchone()
                if row and row[0] and row[0] > 0:
                    return int(row[0])
        return super().count


class ProfileChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        # The list never shows features or notes: do not transfer them.
        return super().get_queryset(request, exclude_parameters).defer("features", "notes")


def _chips(tags: list[dict[str, Any]]) -> str:
    return format_html_join(
        " ",
        '<span class="rec-chip" title="{}">{}</span>',
        ((tag["description"], tag["label"]) for tag in render_tags(tags)),
    )


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = [
        "username",
        "segment_name",
        "tag_chips",
        "propensity_display",
        "last_activity_at",
        "review_flag",
    ]
    list_select_related = ["user", "segment"]
    list_filter = [SegmentFilter, TagFilter, PropensityBandFilter, "is_outlier"]
    search_fields = ["user__username", "user__email"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    ordering = [ACTIVITY_ORDER]  # served by the index rec_profile_activity
    actions = ["rebuild_selected", "export_csv"]
    change_form_template = "admin/recommendations/userprofile/change_form.html"
    change_list_template = "admin/recommendations/userprofile/change_list.html"
    readonly_fields = [
        "user",
        "segment",
        "propensity_display",
        "propensity_source",
        "is_outlier",
        "outlier_reason_display",
        "last_activity_at",
        "updated_at",
        "model_version",
    ]
    fields = tuple(readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Profiles are computed: the detail page is read-only for everyone.
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(
            request.user.is_active and request.user.is_staff and super().has_view_permission(request, obj)
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ProfileChangeList

    @admin.display(description=_("user"), ordering="user__username")
    def username(self, obj: UserProfile) -> str:
        return obj.user.get_username()

    @admin.display(description=_("segment"), ordering="segment__number")
    def segment_name(self, obj: UserProfile) -> str:
        return explanations.segment_name(obj.segment.traits, obj.segment.name) if obj.segment else "—"

    @admin.display(description=_("tags"))
    def tag_chips(self, obj: UserProfile) -> str:
        return _chips(obj.tags)

    @admin.display(description=_("propensity"), ordering="propensity")
    def propensity_display(self, obj: UserProfile) -> str:
        return "—" if obj.propensity is None else f"{obj.propensity:.0%}"

    @admin.display(description=_("outlier reason"))
    def outlier_reason_display(self, obj: UserProfile) -> str:
        return explanations.outlier_reason_text(obj.outlier_reason) or "—"

    @admin.display(description=_("review"), ordering="is_outlier")
    def review_flag(self, obj: UserProfile) -> str:
        # Only the profiles to review are marked: a red cross on every other row read as an error.
        if not obj.is_outlier:
            return ""
        return format_html('<span class="rec-review-flag">{}</span>', gettext("to review"))

    @admin.action(description=_("Rebuild selected profiles"))
    def rebuild_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        # a selection is small: rebuilt here, in this request, chunk by chunk
        result = rebuild_profiles(user_ids=ids)
        text = ngettext(
            "%(count)d profile rebuilt (%(kind)s).", "%(count)d profiles rebuilt (%(kind)s).", result.users
        )
        kind = explanations.rebuild_kind_label(result.kind)
        self.message_user(request, text % {"count": result.users, "kind": kind}, messages.SUCCESS)
        if result.failed_users:
            kept = ngettext(
                "%(count)d profile was not rebuilt and kept its previous state (users %(ranges)s).",
                "%(count)d profiles were not rebuilt and kept their previous state (users %(ranges)s).",
                result.failed_users,
            )
            self.message_user(
                request,
                kept % {"count": result.failed_users, "ranges": ", ".join(result.kept)},
                messages.ERROR,
            )

    @admin.action(description=_("Export selected profiles as CSV"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        # Codes and the staff member's language side by side (see services.profiles.export).
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="profiles.csv"'
        export_profiles(response, queryset=queryset, chunk_size=2000)
        return response

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        profile = self.get_object(request, object_id) if object_id else None
        if profile is not None:
            extra_context.update(profile_detail_context(profile))
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["number", "segment_name", "size", "segment_description", "members_link", "created_at"]
    list_select_related = ["run"]
    readonly_fields = [
        "run",
        "number",
        "segment_name",
        "segment_description",
        "size",
        "centre_table",
        "created_at",
        "members_link",
    ]
    fields = tuple(readonly_fields)
    ordering = ["number"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("name"))
    def segment_name(self, obj: Segment) -> str:
        return explanations.segment_name(obj.traits, obj.name)

    @admin.display(description=_("description"))
    def segment_description(self, obj: Segment) -> str:
        return explanations.segment_description(obj.traits, obj.description)

    @admin.display(description=_("members"))
    def members_link(self, obj: Segment) -> str:
        url = reverse("admin:recommendations_userprofile_changelist") + f"?segment__id__exact={obj.pk}"
        text = ngettext("%(count)d profile", "%(count)d profiles", obj.size) % {"count": obj.size}
        return format_html('<a href="{}">{}</a>', url, text)

    @admin.display(description=_("centre"))
    def centre_table(self, obj: Segment) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (feature_label(name), value.get("mean"), value.get("overall"))
                for name, value in (obj.centre or {}).items()
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            gettext("feature"),
            gettext("segment mean"),
            gettext("all users"),
            rows,
        )
