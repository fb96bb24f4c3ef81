"""``{% load recommendations %}``: assignment and inclusion tags that only delegate to the service.

Every tag reads the shopper from ``context["request"]`` (user, or the anonymous visitor id
set by ``behavior.middleware.VisitorMiddleware``) and passes the request on, so business
rules see the cart, no item appears twice on one page and impressions are written after
the response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import template
from django.utils.translation import gettext_lazy as _

from recommendations.adapter import get_adapter
from recommendations.conf import recommender_settings
from recommendations.services import serving
from recommendations.services.serving.service import UnknownItem
from recommendations.services.serving.types import RecommendationResult

if TYPE_CHECKING:
    # A title is a template's string or a lazily translated default (gettext_lazy).
    from django_stubs_ext import StrPromise

# The blocks' default titles (lazily translated: a tag renders in the request's language).
RECOMMENDED_TITLE = _("Recommended for you")
SIMILAR_TITLE = _("Similar items")
BOUGHT_TOGETHER_TITLE = _("Frequently bought together")
POPULAR_TITLE = _("Popular now")
CART_TITLE = _("Complete your purchase")
OTHER_CATEGORIES_TITLE = _("Popular in other categories")
# A personal block that only has the shop's best sellers to show (a new visitor) says so.
FALLBACK_TITLE = _("Trending in the shop")
FALLBACK_NOTE = _("Browse a few products and this row becomes your own picks.")

register = template.Library()

BLOCK_TEMPLATE = "recommendations/block.html"


def _shopper(context: template.Context) -> tuple[Any, Any, str]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    return request, user, getattr(request, "visitor_id", "") or ""


def _empty(placement: str) -> RecommendationResult:
    return RecommendationResult(
        recommendation_id="", model_version=None, source="popular", placement=placement
    )


@register.simple_tag(takes_context=True)
def recommended_items(
    context: template.Context,
    placement: str = "default",
    limit: int | None = None,
    item: Any = None,
    category: Any = None,
) -> RecommendationResult:
    """``{% recommended_items placement="home" limit=8 as recs %}``: the shopper's list."""
    request, user, visitor_id = _shopper(context)
    extra: dict[str, Any] = {"request": request}
    if item is not None:
        extra["item"] = item
    if category is not None:
        extra["category"] = category
    return serving.recommend_for(
        user=user,
        visitor_id=visitor_id,
        placement=placement,
        limit=limit or recommender_settings.DEFAULT_LIMIT,
        context=extra,
    )


def _related(
    lookup: Any, context: template.Context, item: Any, limit: int | None, placement: str
) -> RecommendationResult:
    """An item-to-item list for the page's shopper; an unknown item gives an empty block."""
    request, _, _ = _shopper(context)
    try:
        return lookup(
            item,
            limit=limit or recommender_settings.DEFAULT_LIMIT,
            placement=placement,
            context={"request": request},
        )
    except UnknownItem:
        return _empty(placement)


@register.simple_tag(takes_context=True)
def similar_items(
    context: template.Context, item: Any, limit: int | None = None, placement: str = "similar"
) -> RecommendationResult:
    """``{% similar_items product limit=6 as recs %}``."""
    return _related(serving.similar_items, context, item, limit, placement)


@register.simple_tag(takes_context=True)
def bought_together(
    context: template.Context, item: Any, limit: int | None = None, placement: str = "bought_together"
) -> RecommendationResult:
    """``{% bought_together product limit=4 as recs %}``."""
    return _related(serving.bought_together, context, item, limit, placement)


@register.simple_tag(takes_context=True)
def popular_items(
    context: template.Context, limit: int | None = None, category: Any = None, placement: str = "popular"
) -> RecommendationResult:
    """``{% popular_items limit=8 category=category as recs %}``."""
    request, _, _ = _shopper(context)
    return serving.popular_items(
        limit=limit or recommender_settings.DEFAULT_LIMIT,
        category=category,
        placement=placement,
        context={"request": request},
    )


def _block(
    recs: RecommendationResult, title: str | StrPromise, note: str | StrPromise = ""
) -> dict[str, Any]:
    return {"recs": recs, "title": title, "note": note, "placement": recs.placement}


def _is_fallback(recs: RecommendationResult) -> bool:
    """Whether a personal list holds nothing personal: popular items only (a shopper without history)."""
    return bool(recs.items) and all(entry.source == "popular" for entry in recs.items)


@register.filter
def item_price(price: Any) -> str:
    """``{{ entry.price|item_price }}``: the price with the shop's currency (``adapter.format_price``)."""
    return get_adapter().format_price(price)


@register.filter
def item_image_url(key: Any) -> str:
    """``{{ entry.key|item_image_url }}``: the item's picture URL ("" without one)."""
    return get_adapter().get_item_image_url(str(key))


@register.inclusion_tag(BLOCK_TEMPLATE, takes_context=True)
def show_recommended(
    context: template.Context,
    placement: str = "default",
    limit: int | None = None,
    title: str | StrPromise = RECOMMENDED_TITLE,
    item: Any = None,
    category: Any = None,
    fallback_title: str | StrPromise = FALLBACK_TITLE,
) -> dict[str, Any]:
    """``{% show_recommended placement="home" limit=8 title="Recommended for you" %}``.

    A list of popular items only (nothing known of the shopper yet) is headed ``fallback_title``
    with a note, so it cannot be taken for a personal selection or for the "Popular now" block.
    """
    recs = recommended_items(context, placement=placement, limit=limit, item=item, category=category)
    if _is_fallback(recs):
        return _block(recs, fallback_title, FALLBACK_NOTE)
    return _block(recs, title)


@register.inclusion_tag(BLOCK_TEMPLATE, takes_context=True)
def show_similar(
    context: template.Context,
    item: Any,
    limit: int | None = None,
    title: str | StrPromise = SIMILAR_TITLE,
    placement: str = "similar",
) -> dict[str, Any]:
    """``{% show_similar product limit=6 title="Similar items" %}``."""
    return _block(similar_items(context, item, limit=limit, placement=placement), title)


@register.inclusion_tag(BLOCK_TEMPLATE, takes_context=True)
def show_bought_together(
    context: template.Context,
    item: Any,
    limit: int | None = None,
    title: str | StrPromise = BOUGHT_TOGETHER_TITLE,
    placement: str = "bought_together",
) -> dict[str, Any]:
    """``{% show_bought_together product limit=4 title="Frequently bought together" %}``."""
    return _block(bought_together(context, item, limit=limit, placement=placement), title)


@register.inclusion_tag(BLOCK_TEMPLATE, takes_context=True)
def show_popular(
    context: template.Context,
    limit: int | None = None,
    title: str | StrPromise = POPULAR_TITLE,
    category: Any = None,
    placement: str = "popular",
) -> dict[str, Any]:
    """``{% show_popular limit=8 title="Popular now" category=None %}``."""
    return _block(popular_items(context, limit=limit, category=category, placement=placement), title)


@register.simple_tag(takes_context=True)
def cart_recommendations(
    context: template.Context, limit: int | None = None, placement: str = "cart"
) -> RecommendationResult:
    """``{% cart_recommendations limit=4 as recs %}``: what goes with the cart (``complete_purchase``)."""
    request, user, visitor_id = _shopper(context)
    return serving.complete_purchase(
        user=user,
        visitor_id=visitor_id,
        limit=limit or recommender_settings.DEFAULT_LIMIT,
        placement=placement,
        context={"request": request},
    )


@register.inclusion_tag(BLOCK_TEMPLATE, takes_context=True)
def show_cart_recommendations(
    context: template.Context,
    limit: int | None = None,
    title: str | StrPromise = CART_TITLE,
    placement: str = "cart",
    other_title: str | StrPromise = OTHER_CATEGORIES_TITLE,
    empty_cart_title: str | StrPromise = RECOMMENDED_TITLE,
) -> dict[str, Any]:
    """``{% show_cart_recommendations limit=4 title="Complete your purchase" %}``.

    ``title`` heads the cart's complements; without any, the block is a different one (popular
    items outside the cart's categories) under ``other_title``; an empty cart gets the shopper's
    own list under ``empty_cart_title``.
    """
    recs = cart_recommendations(context, limit=limit, placement=placement)
    if not get_adapter().get_cart_item_keys(context.get("request")):
        heading = empty_cart_title
    elif recs.source == "complement":
        heading = title
    else:
        heading = other_title
    return _block(recs, heading)
