"""Admin of the recommender: model registry, profiles, privacy and the dashboard (one module each)."""

from recommendations.admin import dashboard, privacy, profiles, refreshes, registry  # noqa: F401
