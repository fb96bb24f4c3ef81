"""The last popular list in process memory: what the recommendations API serves while the database is down.

Every list the API builds needs the database (the catalogue, the shopper's history, the
model registry). While it is unreachable, the GET endpoints answer with the last popular
list this process built, overall or of the category asked for, trimmed to the requested
length, with a new ``recommendation_id`` and ``source: "popular"``: a shop's pages keep a
sensible block instead of an error. Nothing is recorded (no impression: the database is
down). With no such list in memory yet (a process started during the outage, a category
never asked for) the answer is the API's 503 with ``Retry-After``.

The lists are refreshed by the popular endpoint itself and, so that every process has one,
by the other GET endpoints at most every :data:`REFRESH_SECONDS` (one popular list built
from the in-memory popularity snapshot: a few milliseconds).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from behavior.outages import warn_now_and_then
from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
# Categories remembered (the least recently stored go first); the overall list always stays.
MAX_CATEGORIES = 100
OVERALL = ""

_lists: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()
# Answers this process gave from memory because the database was unavailable.
SERVED = 0


def remember(body: dict[str, Any], category: str | None = None) -> None:
    """Keep ``body`` (a serialized popular list) as the fallback of ``category`` (None: overall)."""
    key = category or OVERALL
    with _lock:
        _lists[key] = (time.monotonic(), copy.deepcopy(body))
        _lists.move_to_end(key)
        while len(_lists) > MAX_CATEGORIES + 1:
            oldest = next(k for k in _lists if k != OVERALL)
            del _lists[oldest]


def keep_fresh() -> None:
    """Build the overall popular list when this process has none newer than ``REFRESH_SECONDS``.

    Called after a successful answer; a failure is ignored (the next call tries again).
    """
    with _lock:
        entry = _lists.get(OVERALL)
    if entry is not None and time.monotonic() - entry[0] < REFRESH_SECONDS:
        return
    from recommendations.api.serializers import recommendation_list_data
    from recommendations.services import serving

    try:
        result = serving.popular_items(limit=recommender_settings.MAX_LIMIT, record=False)
    except Exception:  # the fallback must never fail the answer it follows
        logger.debug("Could not refresh the fallback popular list", exc_info=True)
        return
    remember(recommendation_list_data(result))


def answer(*, limit: int, placement: str, category: str | None = None) -> dict[str, Any] | None:
    """The remembered list of ``category`` as a fresh answer of ``limit`` items, or None."""
    global SERVED
    with _lock:
        entry = _lists.get(category or OVERALL)
        if entry is None:
            return None
        body = copy.deepcopy(entry[1])
        SERVED += 1
    body["recommendation_id"] = str(uuid.uuid4())
    body["placement"] = placement
    body["model_version"] = None
    body["source"] = "popular"
    body["items"] = body["items"][: max(1, limit)]
    warn_now_and_then(
        logger,
        "recommendations-fallback",
        "Database unavailable: serving the last popular list from memory (%d answers so far)",
        SERVED,
    )
    return body


def clear() -> None:
    """Forget every remembered list (tests; a catalogue change that must not be served stale)."""
    with _lock:
        _lists.clear()
