"""Admin of the demo catalogue and orders."""

from __future__ import annotations

from django.contrib import admin

from shop.models import Category, Order, OrderItem, PlantedShopper, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "price", "stock", "is_active", "created_at")
    list_display_links = ("sku", "name")
    list_editable = ("stock", "is_active")
    list_filter = ("is_active", "category")
    list_select_related = ("category",)
    search_fields = ("sku", "name", "description")
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ("mark_active", "mark_inactive")

    @admin.action(description="Mark selected products as active")
    def mark_active(self, request, queryset) -> None:
        updated = queryset.update(is_active=True)
        self.message_user(request, f"{updated} product(s) marked active.")

    @admin.action(description="Mark selected products as inactive")
    def mark_inactive(self, request, queryset) -> None:
        updated = queryset.update(is_active=False)
        self.message_user(request, f"{updated} product(s) marked inactive.")


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    raw_id_fields = ("product",)
    fields = ("product", "quantity", "unit_price", "line_total")
    readonly_fields = ("line_total",)

    @admin.display(description="Line total")
    def line_total(self, obj: OrderItem):
        return obj.line_total if obj.pk else "—"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "email", "status", "total", "created_at")
    list_filter = ("status",)
    list_select_related = ("user",)
    search_fields = ("id", "email", "user__username", "visitor_id")
    date_hierarchy = "created_at"
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
    inlines = (OrderItemInline,)


@admin.register(PlantedShopper)
class PlantedShopperAdmin(admin.ModelAdmin):
    """The demo generator's ground truth, read-only: useful to compare with the learned profiles."""

    list_display = ("user", "shopper_type", "is_bot", "churned", "churned_at")
    list_filter = ("shopper_type", "is_bot", "churned")
    list_select_related = ("user",)
    search_fields = ("user__username",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
