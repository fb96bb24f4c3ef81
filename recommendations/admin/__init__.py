"""Admin of the recommender: model registry, profiles, privacy and the dashboard (one module each)."""

from recommendations.admin import dashboard, privacy, profile_runs, profiles, refreshes, registry  # noqa: F401
