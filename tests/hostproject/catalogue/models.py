"""The host shop's own catalogue: the item model the plugin recommends."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    def __str__(self) -> str:
        return self.name


# readme: begin item-model
class Product(models.Model):
    # The public item key (RECOMMENDER["ITEM_KEY_FIELD"]): unique. Without one, the primary key.
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    # Optional, each read by the default adapter when present: a category (a relation, its slug
    # or pk is the key; or a plain field) for "popular in X", diversity and the cart block; price;
    # is_active, available and stock > 0 decide what may be recommended; created_at orders the
    # newest-items fallback; __str__ and get_absolute_url are the name and link in lists.
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    is_active = models.BooleanField(default=True)
    stock = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/products/{self.sku}/"


# readme: end item-model
