"""Serving: one service behind the API, the template tags and the export command.

``recommend_for`` builds a list through the fallback chain personal -> session ->
co-visitation -> popular in category -> popular overall (-> newest items), applies the
adapter's business rules, explains each item and records one impression per list.
``complete_purchase`` (the cart) and ``bought_together`` serve complements, never substitutes.
"""

from recommendations.services.serving.complements import bought_together, complete_purchase
from recommendations.services.serving.service import (
    popular_items,
    recommend_for,
    serve_list,
    similar_items,
)
from recommendations.services.serving.types import (
    Candidate,
    RecommendationResult,
    RecommendedItem,
    ServedList,
)

__all__ = [
    "Candidate",
    "RecommendationResult",
    "RecommendedItem",
    "ServedList",
    "bought_together",
    "complete_purchase",
    "popular_items",
    "recommend_for",
    "serve_list",
    "similar_items",
]
