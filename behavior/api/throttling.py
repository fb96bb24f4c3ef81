"""DRF's scoped throttle with the plugin's own default rates.

DRF's ``ScopedRateThrottle`` raises ``ImproperlyConfigured`` on the first request of a scope
that ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` does not name, so a host on DRF's defaults
passed ``manage.py check`` and then answered 500 to every ``POST /api/events/``. The plugin's
scopes therefore have documented defaults here; a rate the host sets (``None`` included, which
turns the throttle off) always wins.
"""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

# Requests per client (the user, or the IP address of an anonymous client) for each of the
# plugin's scopes when the host names no rate. High enough for a busy shopper behind a shared
# address (a beacon batch per page, a few lists per page), low enough to stop one client from
# flooding the event log or the scorer.
DEFAULT_THROTTLE_RATES: dict[str, str] = {
    "events": "6000/min",
    "recommendations": "6000/min",
}


class PluginScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` that falls back to :data:`DEFAULT_THROTTLE_RATES` for the plugin's scopes."""

    def get_rate(self) -> str | None:
        """The host's rate for the scope when it names one, else the plugin's default."""
        rates = self.THROTTLE_RATES
        if self.scope not in rates and self.scope in DEFAULT_THROTTLE_RATES:
            return DEFAULT_THROTTLE_RATES[self.scope]
        return super().get_rate()
