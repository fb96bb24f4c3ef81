"""Policy hooks of the demo shop."""

from recommendations.adapter import DefaultRecommenderAdapter


class ShopRecommenderAdapter(DefaultRecommenderAdapter):
    """The demo shop uses the default rules."""
