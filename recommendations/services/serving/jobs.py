"""The background refreshes, one at a time across processes (tasks and the refresh command).

Two beats, a redelivered task or a manual run next to a scheduled one would otherwise score
every user twice at once and race on the same rows. Each refresh holds its own
``runtime.locks.run_lock`` (a Postgres advisory lock, released by the server if the process
dies; a renewed cache lease on SQLite) and returns None at once when another process holds it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from recommendations.runtime.locks import run_lock

if TYPE_CHECKING:  # the module itself loads torch: only when a refresh runs
    from recommendations.services.serving.precompute import PrecomputeResult

logger = logging.getLogger(__name__)

LISTS_LOCK = "recommendations:refresh-lists"
RELATIONS_LOCK = "recommendations:refresh-relations"
# The tasks' soft time limit: a cache lease left by a dead process frees itself after this.
LEASE_SECONDS = 3600


def refresh_lists() -> PrecomputeResult | None:
    """``precompute.refresh_recommendations`` under its lock; None when another process runs it."""
    from recommendations.services.serving.precompute import refresh_recommendations

    with run_lock(LISTS_LOCK, lease_seconds=LEASE_SECONDS) as lock:
        if lock is None:
            logger.info("Recommendation lists: another refresh is running; skipped")
            return None
        return refresh_recommendations()


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
