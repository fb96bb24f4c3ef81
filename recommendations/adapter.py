"""Business rules and item display a shop can override (``RECOMMENDER["ADAPTER"]``).

Modelled on django-allauth's adapters: the shop subclasses ``DefaultRecommenderAdapter``
and names the subclass in its settings; the serving layer only ever calls ``get_adapter()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from behavior.items import get_item_model, item_key, item_key_field


def _field_names(model: type[models.Model]) -> set[str]:
    return {field.name for field in model._meta.get_fields() if getattr(field, "concrete", False)}


class DefaultRecommenderAdapter:
    """Policy hooks for recommendations: what may be shown, and how it is shown."""

    # --- availability -----------------------------------------------------------------------
    def available_queryset(self) -> models.QuerySet:
        """Items that may be recommended: active, in stock and available, where the model says so."""
        model = get_item_model()
        names = _field_names(model)
        filters: dict[str, Any] = {}
        if "is_active" in names:
            filters["is_active"] = True
        if "stock" in names:
            filters["stock__gt"] = 0
        if "available" in names:
            filters["available"] = True
        queryset = model._default_manager.filter(**filters)
        if "category" in names and model._meta.get_field("category").is_relation:
            queryset = queryset.select_related("category")
        return queryset

    def available_items(self, keys: Iterable[str]) -> dict[str, Any]:
        """Fetch the recommendable items among ``keys`` in ONE query: ``{key: item}``."""
        keys = list(dict.fromkeys(str(k) for k in keys))
        if not keys:
            return {}
        field = item_key_field()
        queryset = self.available_queryset().filter(**{f"{field}__in": keys})
        return {str(getattr(item, field)): item for item in queryset}

    def filter_available(self, keys: Iterable[str]) -> list[str]:
        """The keys among ``keys`` that may be recommended, in their original order (one query)."""
        keys = list(dict.fromkeys(str(k) for k in keys))
        available = self.available_items(keys)
        return [key for key in keys if key in available]

    def newest_items(self, *, limit: int, category: str | None = None) -> list[Any]:
        """The last fallback: the newest recommendable items (optionally of one category)."""
        queryset = self.available_queryset()
        if category:
            queryset = self.filter_category(queryset, category)
        model = queryset.model
        order = "-created_at" if "created_at" in _field_names(model) else "-pk"
        return list(queryset.order_by(order, "-pk")[:limit])

    # --- categories -----------------------------------------------------------------------------
    def get_item_category(self, item: Any) -> str | None:
        """A stable key of the item's category (slug or pk of a ``category`` relation), or None."""
        category = getattr(item, "category", None)
        if category is None:
            return None
        if isinstance(category, models.Model):
            return str(getattr(category, "slug", None) or category.pk)
        return str(category)

    def get_substitute_group(self, item: Any) -> str | None:
        """Items of one group can replace each other (two phones), so the cart's block never fills
        with them: an item of a cart item's group is shown there only when shoppers buy it with
        that very item more often than instead of it (coffee beans with a coffee machine).

        Default: the category. A shop whose categories are broad ("Electronics") or narrow
        ("Phones 128 GB") may return a key of its own; None puts the item in no group.
        """
        return self.get_item_category(item)

    def substitute_groups(self, keys: Iterable[str]) -> dict[str, str]:
        """``{key: group}`` of the items among ``keys`` (available or not) that have a group.

        One query per 5,000 keys, with the category joined when it is a relation.
        """
        model = get_item_model()
        field = item_key_field()
        queryset = model._default_manager.all()
        if "category" in _field_names(model) and model._meta.get_field("category").is_relation:
            queryset = queryset.select_related("category")
        keys = sorted({str(k) for k in keys})
        groups: dict[str, str] = {}
        for start in range(0, len(keys), 5000):
            for item in queryset.filter(**{f"{field}__in": keys[start : start + 5000]}):
                group = self.get_substitute_group(item)
                if group is not None:
                    groups[str(getattr(item, field))] = str(group)
        return groups

    def get_category_label(self, item: Any) -> str:
        """Human name of the item's category, used in explanations ("popular in Shoes")."""
        category = getattr(item, "category", None)
        return str(category) if category is not None else ""

    def category_key(self, category: Any) -> str | None:
        """Normalise a category given to a tag or the API (object, slug or pk) to its key."""
        if category in (None, ""):
            return None
        if isinstance(category, models.Model):
            return str(getattr(category, "slug", None) or category.pk)
        return str(category)

    def filter_category(self, queryset: models.QuerySet, category: str) -> models.QuerySet:
        """Restrict an item queryset to one category key; no ``category`` field -> nothing."""
        model = queryset.model
        if "category" not in _field_names(model):
            return queryset.none()
        field = model._meta.get_field("category")
        if field.is_relation:
            related = field.related_model
            if "slug" in _field_names(related):
                return queryset.filter(category__slug=category)
            return queryset.filter(category__pk=category)
        return queryset.filter(category=category)

    # --- the shopper's state --------------------------------------------------------------------
    def get_cart_item_keys(self, request: Any = None, context: Mapping[str, Any] | None = None) -> set[str]:
        """Keys of the items in the shopper's cart (the demo shop keeps ``session["cart"] = {sku: qty}``)."""
        if request is None and context:
            request = context.get("request")
        session = getattr(request, "session", None)
        if session is None:
            return set()
        cart = session.get("cart") or {}
        return {str(key) for key in cart} if isinstance(cart, dict) else set()

    # --- display --------------------------------------------------------------------------------
    def get_item_name(self, item: Any) -> str:
        return str(item)

    def get_item_url(self, item: Any) -> str:
        get_url = getattr(item, "get_absolute_url", None)
        return get_url() if callable(get_url) else ""

    def get_item_price(self, item: Any) -> Any:
        return getattr(item, "price", None)

    def format_price(self, price: Any) -> str:
        """A price as shoppers and staff read it; a shop overrides it to add its currency."""
        if price is None:
            return ""
        return f"{float(price):,.2f}"

    def get_item_image_url(self, key: str) -> str:
        """The URL of a picture of the item with public key ``key`` ("" when the shop has none)."""
        return ""

    def get_item_key(self, item: Any) -> str:
        return item_key(item)


def get_adapter() -> DefaultRecommenderAdapter:
    """The project's adapter (``RECOMMENDER["ADAPTER"]``), instantiated."""
    from recommendations.conf import recommender_settings

    return recommender_settings.ADAPTER()
