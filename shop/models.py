"""The demo catalogue and orders."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

# reversed URLs of the catalogue's pages (a product page links every recommended item and every
# category: reverse() costs about as much as rendering the link); the key holds everything reverse
# depends on, so a URLconf or prefix of another request, test or language is never mixed up
_URLS: dict[tuple, str] = {}
_MAX_URLS = 100_000


def catalogue_url(name: str, arg: str) -> str:
    """``reverse(name, args=[arg])``, remembered per URLconf, script prefix and language."""
    key = (name, arg, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), get_language())
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= _MAX_URLS:
            _URLS.clear()
        url = _URLS[key] = reverse(name, args=[arg])
    return url


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    slug = models.SlugField(max_length=100, unique=True, verbose_name=_("slug"))
    description = models.TextField(blank=True, verbose_name=_("description"))

    class Meta:
        ordering = ["name"]
        verbose_name_plural = _("categories")
        verbose_name = _("category")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return catalogue_url("shop:category", self.slug)


class Product(models.Model):
    """A sellable item; ``sku`` is the recommender's item key."""

    sku = models.CharField(max_length=32, unique=True, verbose_name=_("sku"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", verbose_name=_("category")
    )
    price = models.DecimalField(max_digits=10, decimal_places=2, verbose_name=_("price"))
    stock = models.PositiveIntegerField(default=0, verbose_name=_("stock"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["category", "is_active"], name="shop_product_cat_active")]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return catalogue_url("shop:product", self.sku)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", _("Placed")
        PAID = "paid", _("Paid")
        SHIPPED = "shipped", _("Shipped")
        CANCELLED = "cancelled", _("Cancelled")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PLACED, verbose_name=_("status")
    )
    total = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"), verbose_name=_("total")
    )
    email = models.EmailField(blank=True, verbose_name=_("email"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items", verbose_name=_("order"))
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="order_items", verbose_name=_("product")
    )
    quantity = models.PositiveIntegerField(default=1, verbose_name=_("quantity"))
    unit_price = models.DecimalField(max_digits=10, decimal_places=2, verbose_name=_("unit price"))

    class Meta:
        verbose_name = _("order item")
        verbose_name_plural = _("order items")

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class PlantedShopper(models.Model):
    """Ground truth of the demo data generator: what each generated shopper really is.

    Only the demo shop, its tests and the benchmarks read this; the plugin never does
    (it must discover segments, outliers and tags from behaviour alone).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="planted_shopper",
        verbose_name=_("user"),
    )
    shopper_type = models.CharField(max_length=40, db_index=True, verbose_name=_("shopper type"))
    is_bot = models.BooleanField(default=False, verbose_name=_("is bot"))
    churned = models.BooleanField(default=False, verbose_name=_("churned"))
    # When a churned shopper stopped visiting (None for everyone else).
    churned_at = models.DateTimeField(null=True, blank=True, verbose_name=_("churned at"))

    class Meta:
        ordering = ["user_id"]
        verbose_name = _("planted shopper")
        verbose_name_plural = _("planted shoppers")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.shopper_type}"
