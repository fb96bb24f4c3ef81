"""Impressions: one row per served list, written in bulk after the response.

Lists served during a request are buffered and written in one INSERT when the request
finishes (``request_finished``), or at once when no request is in flight. The buffer
may also hold up to ``IMPRESSION_BATCH_SIZE`` rows across requests (high-traffic setups)
before one bulk write.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from django.core.signals import request_finished
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

_buffer: list[Any] = []
_lock = threading.Lock()


def record_impression(result: Any, *, user_id: Any = None, visitor_id: str = "", deferred: bool) -> None:
    """Queue one impression for a served list; ``deferred`` waits for the end of the request."""
    from recommendations.models import Impression

    if not result.items:
        return
    row = Impression(
        recommendation_id=result.recommendation_id,
        user_id=user_id,
        visitor_id=visitor_id[:64],
        placement=result.placement[:64],
        model_version=result.model_version,
        item_keys=[entry.key for entry in result.items],
        source=result.source,
        created_at=timezone.now(),
    )
    with _lock:
        _buffer.append(row)
    if not deferred:
        flush(force=False)


def flush(*, force: bool = True) -> int:
    """Write buffered impressions in one bulk INSERT; returns rows written."""
    from recommendations.models import Impression

    with _lock:
        if not _buffer or (not force and len(_buffer) < recommender_settings.IMPRESSION_BATCH_SIZE):
            return 0
        rows = list(_buffer)
        _buffer.clear()
    try:
        # one multi-row INSERT is atomic on its own: no transaction (savepoint) needed
        Impression.objects.bulk_create(rows)
    except IntegrityError:
        # e.g. a user deleted mid-request: keep the other rows, drop the broken one
        written = 0
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                written += 1
            except IntegrityError:
                logger.info("Impression %s dropped (integrity error)", row.recommendation_id)
        return written
    except Exception:  # impressions are best effort: never fail a page for them
        logger.exception("Could not write %d impressions", len(rows))
        return 0
    return len(rows)


def _on_request_finished(**_: Any) -> None:
    flush(force=False)


def pending() -> int:
    return len(_buffer)


request_finished.connect(_on_request_finished, dispatch_uid="recommendations.impressions")
atexit.register(lambda: flush(force=True) if _buffer else None)
