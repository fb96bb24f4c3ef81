"""Admin of the recommender: registry, profiles, privacy, experiments, merchandising, shadow models
and the dashboard (one module each)."""

from recommendations.admin import (  # noqa: F401
    dashboard,
    experiments,
    merchandising,
    privacy,
    profile_runs,
    profiles,
    refreshes,
    registry,
    shadow,
)
