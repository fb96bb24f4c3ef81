"""Throttles of the plugin's endpoints: trusted client addresses, default rates, Redis optional.

Every plugin endpoint has a scope (events, recommendations, profiles, privacy). The rate of
a scope is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]`` when the project sets one,
else ``RECOMMENDER["THROTTLE_RATES"][scope]`` (so a project without throttle settings is
still limited, and never answers 500 for a missing rate). Signed-in users are counted by
user id, anyone else by :func:`behavior.client_address.client_address` (``REMOTE_ADDR``
unless ``TRUSTED_PROXY_COUNT`` says which ``X-Forwarded-For`` entry a proxy wrote).

DRF's throttles keep their request histories in the default cache; when that cache is
unreachable every request would fail (a 500) before its view ran, so storing an event
would depend on Redis. Here a cache error switches the throttle to a per-process local
memory cache (Django's ``LocMemCache``, thread-safe): each process then counts its own
clients, so during the outage a client may reach the rate once per web process, which
is the price of staying up. A warning is logged when a process starts counting locally
(at most once a minute) and :data:`LOCAL_FALLBACKS` counts the requests so decided.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.cache.backends.locmem import LocMemCache

from behavior import metrics
from behavior.api.throttling import PluginScopedRateThrottle
from behavior.outages import warn_now_and_then

logger = logging.getLogger(__name__)

# Per-process histories while the shared cache is unreachable (never shared between processes).
_local_cache = LocMemCache("behavior-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 50_000}})
_lock = threading.Lock()
# Requests this process throttled from local memory because the shared cache failed.
LOCAL_FALLBACKS = 0


def count_locally(error: BaseException) -> None:
    """Record one request decided from local memory; log a warning at most once a minute."""
    global LOCAL_FALLBACKS
    with _lock:
        LOCAL_FALLBACKS += 1
    metrics.THROTTLE_LOCAL.inc()
    warn_now_and_then(
        logger,
        "throttle-cache",
        "Throttle cache unavailable (%s: %s); counting requests per process until it is back",
        type(error).__name__,
        error,
    )


class ResilientScopedRateThrottle(PluginScopedRateThrottle):
    """``ScopedRateThrottle`` that counts in process memory while the shared cache fails."""

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # any cache backend error: connection refused, timeout, ...
            return self.allow_locally(request, view, exc)

    def allow_locally(self, request: Any, view: Any, error: BaseException) -> bool:
        """The same decision from this process's own history of the client's requests."""
        count_locally(error)
        self.cache = _local_cache
        return PluginScopedRateThrottle.allow_request(self, request, view)
