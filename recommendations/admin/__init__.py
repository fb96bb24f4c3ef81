"""Admin of the recommender: model registry, profiles and the dashboard (one module each)."""
from recommendations.admin import dashboard, profiles, registry  # noqa: F401
from recommendations.admin import privacy  # noqa: E402,F401
