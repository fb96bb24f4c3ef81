"""Signal handlers of the event pipeline (login merge lives in services; wired here)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import Signal, receiver

from behavior.conf import behavior_settings
from behavior.services import ingest as services

logger = logging.getLogger(__name__)

# Sent after the transaction that stored events commits (``behavior.services.ingest.store_rows``
# and the login merge), never for bots' or item-less events:
# ``latest_by_user={user_pk: newest occurred_at (aware datetime)}``. Receivers keep caches
# keyed on "the shopper's latest event" fresh (the recommender's fast path). A receiver
# error is logged and never fails the ingestion.
events_stored = Signal()


@receiver(user_logged_in, dispatch_uid="behavior.merge_visitor_at_login")
def merge_visitor_at_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Attach the visitor's anonymous history to the user who just logged in.

    The visitor id comes from the middleware (``request.visitor_id``) or, when the
    middleware did not run, from the cookie. A failure is logged, never raised: it must
    not prevent a login.
    """
    if request is None:
        return
    visitor_id = getattr(request, "visitor_id", "") or request.COOKIES.get(
        behavior_settings.VISITOR_COOKIE_NAME, ""
    )
    if not visitor_id:
        return
    try:
        services.merge_visitor_into_user(visitor_id, user)
    except Exception:
        logger.exception("Merging visitor %s into user %s failed", visitor_id, getattr(user, "pk", None))
