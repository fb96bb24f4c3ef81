"""Settings of the plugin: one dict, ``settings.RECOMMENDER``, with documented defaults.

Modelled on Django REST framework's ``api_settings``: a DEFAULTS table, lazy import
strings and a reload on ``setting_changed`` so ``override_settings`` works in tests.
``behavior`` owns the keys of the event pipeline; ``recommendations.conf`` extends the
same dict with the keys of the recommender. Unknown keys are reported by the system
check ``recommendations.E001`` (the only place that knows every key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

SETTINGS_NAME = "RECOMMENDER"

BEHAVIOR_DEFAULTS: dict[str, Any] = {
    # Field of the item model used as the public item key (API, CSV, URLs); "pk" by default.
    "ITEM_KEY_FIELD": "pk",
    # Most events accepted in one POST /api/events/ batch.
    "MAX_BATCH_EVENTS": 500,
    # Largest accepted JSON size of one event, in bytes.
    "MAX_EVENT_BYTES": 8 * 1024,
    # Largest accepted request body of POST /api/events/, in bytes.
    "MAX_REQUEST_BYTES": 1024 * 1024,
    # How far in the future a client clock may be before an event is rejected (seconds).
    "FUTURE_TOLERANCE_SECONDS": 300,
    # Oldest accepted client time, in days before now (older means a broken clock).
    "MAX_EVENT_AGE_DAYS": 3650,
    # Retry-After of the 503 answered while the database is unreachable (seconds).
    "UNAVAILABLE_RETRY_AFTER_SECONDS": 5,
    # Batches at least this large take a bulk path (one JSON INSERT on Postgres, executemany on SQLite).
    "BULK_INSERT_THRESHOLD": 20,
    # Batches at least this large are loaded with COPY into a staging table on Postgres.
    "COPY_INSERT_THRESHOLD": 2000,
    # Case-insensitive substrings of a User-Agent that mark a request as a bot.
    "BOT_USER_AGENT_PATTERNS": [
        "bot",
        "crawler",
        "spider",
        "slurp",
        "headless",
        "python-requests",
        "curl/",
        "wget/",
        "httpclient",
        "scrapy",
        "phantomjs",
        "facebookexternalhit",
        "preview",
    ],
    # Cookie holding the first-party anonymous visitor id (signed, HttpOnly; see behavior.identity).
    "VISITOR_COOKIE_NAME": "rec_vid",
    # Script-readable cookie that changes whenever a new visitor id is issued (the beacon's outbox).
    "VISITOR_GENERATION_COOKIE_NAME": "rec_vgen",
    # Lifetime of the visitor cookie in days (an older signature is refused and a new id issued).
    "VISITOR_COOKIE_AGE_DAYS": 365,
    # Values given to the placeholder items `import_events --create-missing` creates, for those of
    # these fields the item model has. An imported event proves the item existed, so by default a
    # placeholder is recommendable (these are the fields the default recommender adapter checks);
    # a catalogue sync later sets the real values. {} leaves the model's own defaults.
    "PLACEHOLDER_ITEM_VALUES": {"is_active": True, "available": True, "stock": 1},
    # Secure flag of the visitor cookies; None follows SESSION_COOKIE_SECURE or the request's scheme.
    "VISITOR_COOKIE_SECURE": None,
    # Events older than this many days are deleted by behavior.prune_events (None = keep forever).
    "EVENT_RETENTION_DAYS": 730,
    # PostgreSQL: the time span of one partition of the events and impressions tables: "month",
    # "week" or "day" (behavior.services.partitions; SQLite keeps plain tables).
    "PARTITION_INTERVAL": "month",
    # PostgreSQL: partitions behavior.maintain_partitions keeps ready after the current one.
    "PARTITIONS_AHEAD": 3,
    # PostgreSQL: days a client's event id is remembered whatever the event's time, so a re-send
    # without occurred_at (the server then stamps a new time) is still a duplicate; past the window
    # the pair (event_id, occurred_at) is the idempotency key (docs/partitioning.md).
    "EVENT_ID_WINDOW_DAYS": 2,
    # Honour the browser's Do-Not-Track (DNT: 1) and Global Privacy Control (Sec-GPC: 1) headers.
    "HONOR_DO_NOT_TRACK": True,
    # Issue no visitor cookie and record no event until the tracking adapter's has_consent() is true.
    "REQUIRE_CONSENT": False,
    # Cookie the default has_consent() reads ("1" = consent given); setting it also requires consent.
    "CONSENT_COOKIE_NAME": None,
    # Import string of the class deciding tracking policy (see behavior.adapter).
    "TRACKING_ADAPTER": "behavior.adapter.DefaultTrackingAdapter",
    # Reverse proxies of this project in front of Django: 0 = throttle by REMOTE_ADDR; N = by the
    # N-th address from the right of X-Forwarded-For (see behavior.client_address).
    "TRUSTED_PROXY_COUNT": 0,
    # Rates of the plugin's throttle scopes (per signed-in user, else per client address) used
    # when REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] has no entry for the scope; None = no limit.
    "THROTTLE_RATES": {
        "events": "1200/min",
        "recommendations": "1200/min",
        "profiles": "60/min",
        "privacy": "30/min",
    },
}

# Keys whose values are import strings, resolved lazily.
IMPORT_STRINGS = {"TRACKING_ADAPTER", "ADAPTER", "ALGORITHM"}


class AppSettings:
    """Attribute access to ``settings.RECOMMENDER`` with defaults and lazy imports."""

    def __init__(self, defaults: Mapping[str, Any], import_strings: set[str] | None = None) -> None:
        self.defaults = dict(defaults)
        self.import_strings = set(import_strings or IMPORT_STRINGS)
        self._cached: set[str] = set()
        self._user: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            self._user = dict(getattr(settings, SETTINGS_NAME, {}) or {})
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        value = self.user_settings.get(name, self.defaults[name])
        if name in self.import_strings and isinstance(value, str):
            value = import_string(value)
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def reload(self) -> None:
        for name in self._cached:
            delattr(self, name)
        self._cached.clear()
        self._user = None


behavior_settings = AppSettings(BEHAVIOR_DEFAULTS)


def _reload(*, setting: str, **_: Any) -> None:
    if setting in {SETTINGS_NAME, "RECOMMENDER_ITEM_MODEL"}:
        behavior_settings.reload()


setting_changed.connect(_reload)
