"""Clicks on served lists, attributed through their recommendation ids (shadows and replay).

A click counts for a list only when its event carries the list's recommendation id, its item is
one the list showed, it is the shopper's the list was shown to (their user id, or the visitor
id), it was received no earlier than the list was served (less a minute of clock slack), and
it is not a bot's: the rules of the experiments' attribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from behavior.items import item_key_field

__all__ = ["ShownList", "clicked_items"]

CLOCK_SLACK = timedelta(seconds=60)
CHUNK = 2_000


@dataclass(frozen=True)
class ShownList:
    """A served list as attribution needs it."""

    item_keys: list[str]
    user_id: Any
    visitor_id: str
    served_at: datetime


def clicked_items(lists: Mapping[str, ShownList]) -> dict[str, set[str]]:
    """Recommendation id (text) -> the keys of the list's items the shopper clicked."""
    from behavior.models import Event

    ids = list(lists)
    clicked: dict[str, set[str]] = {}
    key_field = f"item__{item_key_field()}"
    for start in range(0, len(ids), CHUNK):
        rows = Event.objects.filter(
            recommendation_id__in=ids[start : start + CHUNK], event_type="click", is_bot=False
        ).values_list("recommendation_id", key_field, "user_id", "visitor_id", "received_at")
        for recommendation_id, key, user_id, visitor_id, received_at in rows:
            shown = lists[str(recommendation_id)]
            same_shopper = (user_id is not None and user_id == shown.user_id) or (
                shown.user_id is None and bool(visitor_id) and visitor_id == shown.visitor_id
            )
            if same_shopper and str(key) in shown.item_keys and received_at >= shown.served_at - CLOCK_SLACK:
                clicked.setdefault(str(recommendation_id), set()).add(str(key))
    return clicked
