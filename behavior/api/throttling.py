"""DRF's scoped throttle with the plugin's own default rates and the trusted client address.

DRF's ``ScopedRateThrottle`` raises ``ImproperlyConfigured`` on the first request of a scope
that ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` does not name, so a host on DRF's defaults
passed ``manage.py check`` and then answered 500 to every ``POST /api/events/``. The plugin's
scopes therefore have documented defaults (``RECOMMENDER["THROTTLE_RATES"]``, in
``behavior.conf``); a rate the host sets in DRF's settings (``None`` included, which turns the
throttle off) always wins. Anonymous clients are told apart by the address this server trusts
(``behavior.client_address``), never by a raw ``X-Forwarded-For`` header.
"""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import ScopedRateThrottle

from behavior.client_address import client_address
from behavior.conf import behavior_settings


class PluginScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` with the plugin's default rates and the trusted client address."""

    def get_rate(self) -> str | None:
        """The host's rate for the scope when it names one, else the plugin's default."""
        rates = self.THROTTLE_RATES or {}  # DRF's DEFAULT_THROTTLE_RATES, read as DRF reads it
        defaults = behavior_settings.THROTTLE_RATES or {}
        if self.scope not in rates and self.scope in defaults:
            return defaults[self.scope]
        return super().get_rate()  # the host's rate; a scope nobody names stays DRF's error

    def get_ident(self, request: Any) -> str:
        """The client address this server trusts (never a raw ``X-Forwarded-For``)."""
        return client_address(request)
