"""The demo catalogue and orders."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import get_language

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
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return catalogue_url("shop:category", self.slug)


class Product(models.Model):
    """A sellable item; ``sku`` is the recommender's item key."""

    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["category", "is_active"], name="shop_product_cat_active")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return catalogue_url("shop:product", self.sku)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_items")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

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
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="planted_shopper"
    )
    shopper_type = models.CharField(max_length=40, db_index=True)
    is_bot = models.BooleanField(default=False)
    churned = models.BooleanField(default=False)
    # When a churned shopper stopped visiting (None for everyone else).
    churned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.shopper_type}"
