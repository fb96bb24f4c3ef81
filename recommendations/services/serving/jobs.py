"""The background refreshes, one at a time across processes (tasks and the refresh command).

Two beats, a redelivered task or a manual run next to a scheduled one would otherwise score
every user twice at once and race on the same rows. Each refresh holds its own
``runtime.locks.run_lock`` (a Postgres advisory lock, released by the server if the process
dies; a renewed cache lease on SQLite) and returns None at once when another process holds it.
The lists' refresh (``serving.fanout``) takes ``LISTS_LOCK`` to plan its chunks, which may then
run on other workers; its running ``ListRefresh`` row keeps the next refresh out meanwhile.
"""

from __future__ import annotations

import logging

from recommendations.runtime.locks import run_lock

logger = logging.getLogger(__name__)

LISTS_LOCK = "recommendations:refresh-lists"
RELATIONS_LOCK = "recommendations:refresh-relations"
# The tasks' soft time limit: a cache lease left by a dead process frees itself after this.
LEASE_SECONDS = 3600


def refresh_relations() -> dict | None:
    """Item relations, then popularity, under their lock: ``{kind: rows, "popular": n}`` or None."""
    from recommendations.services.serving.popularity import refresh_popularity
    from recommendations.services.serving.relations import refresh_item_relations

    with run_lock(RELATIONS_LOCK, lease_seconds=LEASE_SECONDS) as lock:
        if lock is None:
            logger.info("Item relations: another refresh is running; skipped")
            return None
        counts = refresh_item_relations()
        counts["popular"] = refresh_popularity()
        return counts
