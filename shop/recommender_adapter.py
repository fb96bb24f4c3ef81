"""Policy hooks of the demo shop."""

from typing import Any

from django.urls import reverse

from recommendations.adapter import DefaultRecommenderAdapter
from shop.money import format_price


class ShopRecommenderAdapter(DefaultRecommenderAdapter):
    """The demo shop uses the default rules, its currency and its drawn product pictures."""

    def format_price(self, price: Any) -> str:
        return "" if price is None else format_price(price)

    def get_item_image_url(self, key: str) -> str:
        return reverse("shop:product_image", kwargs={"sku": key})
