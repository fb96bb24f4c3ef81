"""Per-shopper "latest event" markers in Redis: is a precomputed list still fresh, without SQL?

``behavior`` sends ``events_stored`` after the transaction that stored events commits; the
receiver here raises each user's marker to their newest event time (an atomic "max" in
Redis, so concurrent writers and out-of-order events never lower it). The API's slow path
raises the marker to what it read from the database, which fills a missing marker and
repairs a low one; a marker can only be too high after events were deleted, and then the
fast path simply steps aside until it expires. A missing marker means "ask the database".

Values are ``repr(float)`` timestamps (``"0"`` for a shopper without events), the same
text the slow path derives from ``ShopperState.latest_ts``, so the fast path compares strings.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from recommendations.services import personal_keys
from recommendations.services.serving.impressions import cache_key, redis_client

logger = logging.getLogger(__name__)

# A day: markers of shoppers who come back later are refilled by one slow request.
MARKER_SECONDS = 86400

# KEYS[1] marker; ARGV[1] timestamp text, ARGV[2] ttl. Raises the marker, never lowers it.
_RAISE_LUA = """
local current = redis.call('GET', KEYS[1])
if (not current) or (tonumber(current) or -1) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


def marker_text(latest_ts: float | None) -> str:
    """The marker value for a shopper whose newest event is at ``latest_ts`` (None: no events)."""
    return "0" if latest_ts is None else repr(float(latest_ts))


def marker_key(user_id: Any) -> str:
    """The marker's key before the cache's prefix (``cache.make_key``) is applied."""
    return personal_keys.LATEST_EVENT.key(user_id)


def digest(raw: bytes) -> str:
    """A fingerprint of a cache entry's stored bytes (unchanged bytes, unchanged entry).

    SHA-1 hex because the fast path's Lua script compares it with ``redis.sha1hex``; it
    only detects change, nobody chooses these bytes to collide.
    """
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def raise_markers(client: Any, latest_by_user: dict[Any, str], *, pipeline: Any = None) -> None:
    """Raise each user's marker to the given timestamp text (queued on ``pipeline`` if given)."""
    # EVAL, not EVALSHA through register_script: a pipeline would first ask SCRIPT EXISTS
    target = pipeline if pipeline is not None else client.pipeline(transaction=False)
    for user_id, text in latest_by_user.items():
        target.eval(_RAISE_LUA, 1, cache_key(marker_key(user_id)), text, MARKER_SECONDS)
    if pipeline is None:
        target.execute()


def on_events_stored(sender: Any, latest_by_user: dict[Any, datetime], **kwargs: Any) -> None:
    """``behavior.signals.events_stored`` receiver: raise the markers of the users concerned."""
    client = redis_client()
    if client is None or not latest_by_user:
        return
    try:
        raise_markers(
            client, {user: marker_text(moment.timestamp()) for user, moment in latest_by_user.items()}
        )
    except Exception:
        # the marker is only a shortcut: without it the fast path asks the database; but a
        # marker left too LOW would let it serve a stale list, so drop the markers instead
        logger.warning("Could not raise latest-event markers; dropping them", exc_info=True)
        _drop_markers(client, list(latest_by_user))


def _drop_markers(client: Any, user_ids: list) -> None:
    try:
        client.delete(*[cache_key(marker_key(user_id)) for user_id in user_ids])
    except Exception:
        logger.error("Could not drop latest-event markers of %d users", len(user_ids), exc_info=True)


def connect() -> None:
    """Connect the receiver (called by ``RecommendationsConfig.ready``)."""
    from behavior.signals import events_stored

    events_stored.connect(on_events_stored, dispatch_uid="recommendations.freshness.events_stored")
