"""Services of user profiles: rebuild, export, detail and dashboard data."""

from recommendations.services.profiles.outcome import RebuildResult
from recommendations.services.profiles.rebuild import rebuild_profiles

__all__ = ["RebuildResult", "rebuild_profiles"]
