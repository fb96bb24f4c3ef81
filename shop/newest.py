"""The front page's "New in": the newest products, taken across categories in turn."""

from __future__ import annotations

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from shop.models import Product


def newest_products(limit: int = 8) -> list[Product]:
    """The newest active product of each category, then each one's second newest, ... (``limit`` in all).

    A catalogue imported category by category has its newest ``limit`` products in one
    category: taking them in turn shows what is new across the shop. Within a round the
    newest comes first. One query (a window function ranks products within their category).
    """
    ranked = (
        Product.objects.filter(is_active=True)
        .select_related("category")
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("category_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=limit)
        .order_by("rank", "-created_at", "-id")
    )
    return list(ranked[:limit])
