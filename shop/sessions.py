"""Session engine of the demo: Django's ``cached_db`` that keeps reading while the cache is down."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db

logger = logging.getLogger("django.contrib.sessions")


# django-stubs leaves out cached_db's private members (_cache, _get_session_from_db) this override uses.
class SessionStore(cached_db.SessionStore):
    """``cached_db`` sessions (same cache keys) whose load survives a cache outage.

    Django's ``load`` already treats a failed cache read as a miss, but the write-back of the
    session read from the database then raises, so every request of a logged-in shopper
    fails while Redis is away. Here that write-back is logged instead (as Django's ``save``
    does). ``delete`` still raises: a logout must not leave a cached session behind.
    """

    def load(self) -> dict[str, Any]:
        try:
            data = self._cache.get(self.cache_key)  # type: ignore[attr-defined]
        except Exception:
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()  # type: ignore[attr-defined]
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))  # type: ignore[attr-defined]
        except Exception:
            logger.warning("Session read from the database; the cache is unavailable (%s)", self._cache)  # type: ignore[attr-defined]
        return data
