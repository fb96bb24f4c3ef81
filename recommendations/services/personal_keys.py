"""Every cache key that names one shopper, in one place: erasure is complete by construction.

Serving (``services.serving``), the API's fast path (``fastpath``), the freshness markers and
the API's throttles build each per-person key through a :class:`PersonalKey` of
:data:`PERSONAL_KEYS`, and ``services.privacy.forget_user`` deletes every key those
templates can produce for a user id and their visitor ids (:func:`erasure_targets`). A new
per-person key is therefore added here or not at all; ``tests/recommendations/services/test_personal_keys.py``
scans Redis after a whole shopping session and fails on any key of the person left behind.

Keys are written before the cache's own prefix and version (``cache.make_key``). Templates
hold ``{user}`` or ``{visitor}`` (the subject) and may hold other fields, which erasure
matches with a wildcard. A subject is always followed by ``:`` or the end of the key, so
user 5's patterns never match user 55's keys.

Not listed, on purpose:

- the shared impression queue (``rec:impressions``) is one list for everybody: erasure takes
  the person's rows out of it (``serving.impressions.forget``) instead of deleting it;
- throttle counters of anonymous clients are keyed by network address, not by a shopper;
- the login session is the shop's (``SESSION_ENGINE``): it ends at logout or when the account
  is deleted, and the plugin does not own it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

__all__ = [
    "PERSONAL_KEYS",
    "PersonalKey",
    "erasure_targets",
]


@dataclass(frozen=True)
class PersonalKey:
    """One family of cache keys naming one shopper (``subject``: ``"user"`` or ``"visitor"``)."""

    name: str
    template: str
    subject: str
    writer: str

    @property
    def fields(self) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(self.template) if field}

    @property
    def exact(self) -> bool:
        """True when the subject alone decides the key (erasure deletes it without a scan)."""
        return self.fields == {self.subject}

    def key(self, subject: Any, **parts: Any) -> str:
        """The key of ``subject`` (a user id or visitor id) with the template's other fields."""
        return self.template.format(**{self.subject: subject, **parts})

    def pattern(self, subject: Any) -> str:
        """A regular expression matching every key of ``subject`` in this family (other fields: any text)."""
        parts = []
        for literal, field, _, _ in string.Formatter().parse(self.template):
            parts.append(re.escape(literal))
            if field == self.subject:
                parts.append(re.escape(str(subject)))
            elif field:
                parts.append(".*")
        return "".join(parts)


# DRF's throttle key of an authenticated user (``SimpleRateThrottle.cache_format`` with the user
# id as the ident), read from DRF rather than retyped so a change there cannot slip past erasure.
_DRF_THROTTLE = SimpleRateThrottle.cache_format.replace("%(scope)s", "{scope}").replace("%(ident)s", "{user}")

PRECOMPUTED = PersonalKey(
    "precomputed list", "rec:pre:{user}", "user", "serving (state.precomputed_cache_key)"
)
NOT_INTERESTED_USER = PersonalKey("not-interested marks", "rec:ni:u:{user}", "user", "serving (state)")
NOT_INTERESTED_VISITOR = PersonalKey(
    "not-interested marks", "rec:ni:v:{visitor}", "visitor", "serving (state)"
)
BOUGHT = PersonalKey("purchased items", "rec:bought:{user}", "user", "serving (state.purchased_keys_cached)")
REALTIME_USER = PersonalKey(
    "network scores", "rec:rt:u:{user}:{latest}:{version}", "user", "serving (service._realtime)"
)
REALTIME_VISITOR = PersonalKey(
    "network scores", "rec:rt:v:{visitor}:{latest}:{version}", "visitor", "serving (service._realtime)"
)
ASSEMBLED_LIST = PersonalKey("assembled list", "rec:list:{user}:{inputs}", "user", "serving (reuse_list)")
REPLAY = PersonalKey("replayable response", "rec:fast:{user}", "user", "fast path (list_key)")
LATEST_EVENT = PersonalKey("latest-event marker", "rec:latest:u:{user}", "user", "freshness (marker_key)")
THROTTLE = PersonalKey("throttle history", _DRF_THROTTLE, "user", "DRF throttles of a signed-in user")
THROTTLE_WINDOW = PersonalKey(
    "throttle counter", _DRF_THROTTLE + ":{window}", "user", "API throttles (CounterScopedRateThrottle)"
)

PERSONAL_KEYS: tuple[PersonalKey, ...] = (
    PRECOMPUTED,
    NOT_INTERESTED_USER,
    NOT_INTERESTED_VISITOR,
    BOUGHT,
    REALTIME_USER,
    REALTIME_VISITOR,
    ASSEMBLED_LIST,
    REPLAY,
    LATEST_EVENT,
    THROTTLE,
    THROTTLE_WINDOW,
)


def throttle_counter_key(base: str, window: int) -> str:
    """A throttle's counter of one time window: its DRF key (``THROTTLE``) plus ``:window``.

    For a signed-in user that is a :data:`THROTTLE_WINDOW` key; for an anonymous client the
    base key names a network address, not a shopper.
    """
    return f"{base}:{window}"


def not_interested_key(user_id: Any, visitor_id: str) -> str:
    """The cache entry of a shopper's "not interested" marks (the user's, else the visitor's)."""
    if user_id is not None:
        return NOT_INTERESTED_USER.key(user_id)
    return NOT_INTERESTED_VISITOR.key(visitor_id)


def realtime_key(user_id: Any, visitor_id: str, latest: Any, version: Any) -> str:
    """The cache entry of the network's scores for a shopper's latest event and model version.

    Nobody (no user, no visitor id) gets a key naming nobody, shared by all such requests.
    """
    if user_id is not None:
        return REALTIME_USER.key(user_id, latest=latest, version=version)
    if visitor_id:
        return REALTIME_VISITOR.key(visitor_id, latest=latest, version=version)
    return f"rec:rt::{latest}:{version}"


@dataclass(frozen=True)
class ErasureTargets:
    """The keys of one person: ``exact`` ones to delete, and ``patterns`` to find by scanning."""

    exact: list[str]
    patterns: list[str]

    def regex(self, made_key: str = "{}") -> re.Pattern[str] | None:
        """One expression that fully matches any key of ``patterns``; None when there are none.

        ``made_key``: how the cache writes a key, with ``{}`` for the key itself (e.g.
        ``"shop:1:{}"`` for Django's default key function with a prefix and version 1).
        """
        if not self.patterns:
            return None
        before, _, after = made_key.partition("{}")
        body = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        return re.compile(f"{re.escape(before)}(?:{body}){re.escape(after)}", re.DOTALL)


def erasure_targets(user_id: Any, visitor_ids: Iterable[str]) -> ErasureTargets:
    """Every key that :data:`PERSONAL_KEYS` can produce for the user and their visitor ids."""
    subjects = {"user": [user_id] if user_id is not None else [], "visitor": [v for v in visitor_ids if v]}
    exact: list[str] = []
    patterns: list[str] = []
    for family in PERSONAL_KEYS:
        for subject in subjects[family.subject]:
            if family.exact:
                exact.append(family.key(subject))
            else:
                patterns.append(family.pattern(subject))
    return ErasureTargets(exact=exact, patterns=patterns)
