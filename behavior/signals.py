"""Signal handlers of the event pipeline: the login merge and the visitor id renewal."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import Signal, receiver

from behavior import identity
from behavior.services.identity import merge_visitor_into_user

logger = logging.getLogger(__name__)

# Sent after the transaction that stored events commits (``behavior.services.storage.store_rows``
# and the login merge), never for bots' or item-less events:
# ``latest_by_user={user_pk: newest occurred_at (aware datetime)}``. Receivers keep caches
# keyed on "the shopper's latest event" fresh (the recommender's fast path). A receiver
# error is logged and never fails the ingestion.
events_stored = Signal()

# Sent by ``behavior.prune_events`` (the daily retention task) after it pruned events:
# ``now`` (aware datetime). Receivers delete the personal data they keep past its retention
# and return ``{kind: rows deleted}``, which the task reports; an error is logged and the
# other receivers still run.
retention_due = Signal()

# Sent at login by ``merge_visitor_at_login`` after the browser's verified visitor id was merged
# into the user, before the id is renewed: ``visitor_id``, ``user``. Receivers carry over what
# they keep per visitor (the recommender: experiment assignments). An error is logged and never
# prevents the login.
visitor_merged = Signal()


def _request_visitor(request: Any) -> identity.Visitor | None:
    """The visitor this browser was issued: from the middleware, else from the signed cookie."""
    visitor_id = getattr(request, "visitor_id", "")
    issued_at = getattr(request, "visitor_issued_at", None)
    if visitor_id and issued_at is not None:
        return identity.Visitor(visitor_id, issued_at)
    if hasattr(request, "visitor_id"):  # the middleware ran and found no trackable visitor
        return None
    return identity.read_request_visitor(request) if hasattr(request, "COOKIES") else None


@receiver(user_logged_in, dispatch_uid="behavior.merge_visitor_at_login")
def merge_visitor_at_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Attach this browser's anonymous history to the user who just logged in; issue a new id.

    Only the visitor id the server issued to this browser (a verified signed cookie) is
    merged, and only its events stored since it was issued. Then the browser gets a new id,
    so its later anonymous events (after a logout, say) start a history of their own. A
    failure is logged, never raised: it must not prevent a login.
    """
    if request is None:
        return
    visitor = _request_visitor(request)
    if visitor is not None:
        try:
            merge_visitor_into_user(visitor.id, user, since=visitor.issued_at)
        except Exception:
            logger.exception("Merging a visitor into user %s failed", getattr(user, "pk", None))
        for receiver_, outcome in visitor_merged.send_robust(sender=None, visitor_id=visitor.id, user=user):
            if isinstance(outcome, Exception):
                logger.error("%r failed at login: %s", receiver_, outcome, exc_info=outcome)
    _renew(request)


@receiver(user_logged_out, dispatch_uid="behavior.new_visitor_at_logout")
def new_visitor_at_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Issue a new visitor id at logout: the next person on this browser is someone new."""
    if request is not None:
        _renew(request)


def _renew(request: Any) -> None:
    # Only where the visitor middleware runs (it writes the cookie) and tracking is allowed.
    if getattr(request, "may_track", False) and hasattr(request, "visitor_id"):
        identity.issue_visitor(request)
