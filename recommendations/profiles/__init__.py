"""Services of user profiles: rebuild, export, detail and dashboard data."""

from recommendations.profiles.rebuild import RebuildResult, rebuild_profiles

__all__ = ["RebuildResult", "rebuild_profiles"]
