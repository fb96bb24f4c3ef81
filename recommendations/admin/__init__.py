"""Admin of the recommender: registry, profiles, privacy, experiments and the dashboard (one module each)."""

from recommendations.admin import dashboard, experiments, privacy, profiles, refreshes, registry  # noqa: F401
