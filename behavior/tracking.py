"""The helper the shop's views call: ``record_event(request, "view", product)``."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from contextlib import nullcontext
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from behavior import metrics
from behavior.adapter import get_tracking_adapter
from behavior.models import Event
from behavior.outages import database_unavailable, warn_now_and_then
from behavior.services import ingest as services
from behavior.services import validation as v

logger = logging.getLogger(__name__)


def record_event(
    request: HttpRequest,
    event_type: str,
    item: Any = None,
    *,
    value: Any = None,
    quantity: int = 1,
    context: dict | None = None,
    recommendation_id: Any = None,
    placement: str = "",
    position: Any = None,
) -> Event | None:
    """Record one server-side event for the shopper of ``request``; return it, or None.

    The user, visitor id, session and bot flag come from the request. Returns None when
    the tracking adapter does not allow tracking (Do-Not-Track, no consent) and when the
    event could not be stored. Never raises: a tracking problem must not break a page, so
    it is logged, and database errors are contained in a savepoint.

    While the database is unreachable the event is **lost, and counted** (:data:`LOST_EVENTS`,
    one warning a minute with the running count), not kept for later: the page that records
    it read its product from the same database a moment before, so this only happens in the
    instant an outage begins; nobody was told the event was stored; and keeping it in the
    web process's memory would lose it on the next restart while pretending otherwise (a
    spool in Redis would make event storage depend on Redis again).
    """
    try:
        adapter = get_tracking_adapter()
        may_track = getattr(request, "may_track", None)
        if may_track is None:
            may_track = adapter.may_track(request)
        if not may_track:
            return None
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        raw = {
            "event_type": event_type,
            "item": item,
            "value": value,
            "quantity": quantity,
            "context": context or {},
        }
        raw.update(_attribution(recommendation_id, placement, position))
        # Inside the caller's transaction a savepoint contains a database error; outside
        # one, the single INSERT commits on its own (no BEGIN/COMMIT round trips per page).
        guard = transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()
        with guard:
            result = services.ingest_events(
                [raw],
                user=user if user is not None and user.is_authenticated else None,
                visitor_id=getattr(request, "visitor_id", "") or "",
                session_id=(session.session_key or "") if session is not None else "",
                is_bot=adapter.is_bot(request),
                trusted=True,
                return_events=True,
            )
        if result.rejected:
            logger.warning("Event %r not recorded: %s", event_type, result.rejected[0]["errors"])
            return None
        return result.events[0] if result.events else None
    except Exception as exc:
        if database_unavailable(exc):
            _count_lost(event_type, exc)
        else:
            logger.exception("Recording a %r event failed", event_type)
        return None


# Events of server-side views that this process could not store because the database was
# unreachable (see record_event); exported as a metric by the operations layer.
LOST_EVENTS = 0
_lost_lock = threading.Lock()


def _count_lost(event_type: str, error: BaseException) -> None:
    global LOST_EVENTS
    with _lost_lock:
        LOST_EVENTS += 1
        lost = LOST_EVENTS
    metrics.count_events(lost=1)
    warn_now_and_then(
        logger,
        "tracking-lost",
        "Event %r lost: the database is unavailable (%s); %d events lost by this process so far",
        event_type,
        type(error).__name__,
        lost,
    )


def _attribution(recommendation_id: Any, placement: str, position: Any) -> dict[str, Any]:
    """Attribution from URL parameters (``?rec=&pos=&pl=``): dropped when malformed, never fatal."""
    if not recommendation_id:
        return {}
    try:
        rec = uuid.UUID(str(recommendation_id))
    except ValueError:
        return {}
    out: dict[str, Any] = {"recommendation_id": str(rec)}
    with contextlib.suppress(v.FieldError):
        out["placement"] = v.clean_identifier(placement or "")
    try:
        pos = int(position) if position not in (None, "") else None
        if pos is not None and 0 <= pos <= v.MAX_POSITION:
            out["position"] = pos
    except (TypeError, ValueError):
        pass
    return out
