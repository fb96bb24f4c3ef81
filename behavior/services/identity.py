"""Attaching a visitor's anonymous events to the user who logs in from the same browser."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction

from behavior.models import Event
from behavior.services.storage import announce

logger = logging.getLogger(__name__)

# Clock difference tolerated between the web process that issued a visitor id and the one
# that stored its events (the id is random and unknown to anyone else, so a minute of slack
# opens nothing; the signature's time is also truncated to the second).
MERGE_CLOCK_SKEW = timedelta(seconds=60)


def merge_visitor_into_user(visitor_id: str, user: Any, *, since: datetime | None = None) -> int:
    """Attach a visitor's anonymous events to ``user`` (called at login); return how many.

    ``since``: when the id was issued to this browser; only events the server received
    from then on (``received_at``, the server's clock, never the client's ``occurred_at``)
    are merged, so events stored under the same id by anyone else before are not.
    """
    if not visitor_id or user is None or user.pk is None:
        return 0
    anonymous = Event.objects.filter(visitor_id=visitor_id, user__isnull=True)
    if since is not None:
        anonymous = anonymous.filter(received_at__gte=since - MERGE_CLOCK_SKEW)
    with transaction.atomic():
        merged = anonymous.update(user=user)
        if merged:
            newest = (
                Event.objects.filter(user=user, visitor_id=visitor_id, is_bot=False, item__isnull=False)
                .order_by()
                .aggregate(newest=models.Max("occurred_at"))["newest"]
            )
            if newest is not None:
                announce({user.pk: newest})
    if merged:
        logger.info("Merged %d anonymous events of visitor %s into user %s", merged, visitor_id, user.pk)
    return merged
