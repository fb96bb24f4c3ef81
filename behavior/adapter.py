"""Tracking policy a shop can override (allauth-style adapter)."""

from __future__ import annotations

from django.http import HttpRequest

from behavior.conf import behavior_settings


class DefaultTrackingAdapter:
    """Decides whether a request may be tracked and who the shopper is."""

    def may_track(self, request: HttpRequest) -> bool:
        """False when the shopper opted out (Do-Not-Track / GPC) or has not consented."""
        if behavior_settings.HONOR_DO_NOT_TRACK and (
            request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1"
        ):
            return False
        cookie = behavior_settings.CONSENT_COOKIE_NAME
        return not (cookie and request.COOKIES.get(cookie) != "1")

    def is_bot(self, request: HttpRequest) -> bool:
        """True when the User-Agent looks like an automated client."""
        agent = request.headers.get("User-Agent", "").lower()
        if not agent:
            return True
        return any(pattern in agent for pattern in behavior_settings.BOT_USER_AGENT_PATTERNS)


def get_tracking_adapter() -> DefaultTrackingAdapter:
    """The configured adapter instance (``RECOMMENDER["TRACKING_ADAPTER"]``)."""
    return behavior_settings.TRACKING_ADAPTER()
