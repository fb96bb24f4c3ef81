"""Template context shared by every shop page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def shop(request: HttpRequest) -> dict[str, Any]:
    from shop.models import Category

    cart = request.session.get("cart", {}) if hasattr(request, "session") else {}
    return {
        "nav_categories": Category.objects.only("name", "slug"),
        "cart_count": sum(int(q) for q in cart.values()) if isinstance(cart, dict) else 0,
    }
