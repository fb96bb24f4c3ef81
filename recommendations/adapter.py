"""Business rules and item display a shop can override (``RECOMMENDER["ADAPTER"]``)."""
from __future__ import annotations


class DefaultRecommenderAdapter:
    """Policy hooks for recommendations."""


def get_adapter() -> DefaultRecommenderAdapter:
    from recommendations.conf import recommender_settings

    return recommender_settings.ADAPTER()
