"""The shopper's recent behaviour, read in one indexed query per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from behavior.items import item_key_field
from recommendations.conf import recommender_settings

History = list[tuple[str, str, float]]


@dataclass
class ShopperState:
    """Who is asking and what they did lately (``history`` oldest first)."""

    user_id: Any = None
    visitor_id: str = ""
    history: History = field(default_factory=list)

    @property
    def who(self) -> str:
        if self.user_id is not None:
            return f"u:{self.user_id}"
        return f"v:{self.visitor_id}" if self.visitor_id else ""

    @property
    def latest_ts(self) -> float | None:
        return self.history[-1][2] if self.history else None

    @property
    def oldest_ts(self) -> float | None:
        return self.history[0][2] if self.history else None

    def keys_with_type(self, *event_types: str) -> set[str]:
        return {key for key, event_type, _ in self.history if event_type in event_types}


def load_state(*, user: Any = None, visitor_id: str = "", limit: int | None = None) -> ShopperState:
    """The latest item events of a user (or an anonymous visitor); bots' events are ignored."""
    from behavior.models import Event

    user_id = (
        getattr(user, "pk", None) if user is not None and getattr(user, "is_authenticated", False) else None
    )
    state = ShopperState(user_id=user_id, visitor_id=visitor_id or "")
    if user_id is None and not visitor_id:
        return state
    queryset = Event.objects.filter(is_bot=False, item__isnull=False)
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    else:
        queryset = queryset.filter(visitor_id=visitor_id, user__isnull=True)
    key_path = "item_id" if item_key_field() == _item_pk_name() else f"item__{item_key_field()}"
    rows = queryset.order_by("-occurred_at").values_list(key_path, "event_type", "occurred_at")[
        : limit or recommender_settings.SESSION_EVENTS
    ]
    state.history = [(str(key), event_type, when.timestamp()) for key, event_type, when in reversed(rows)]
    return state


def _item_pk_name() -> str:
    from behavior.items import get_item_model

    return get_item_model()._meta.pk.name


def purchased_keys(user_id: Any) -> set[str]:
    """Every item a user ever bought (one query over purchase events)."""
    from behavior.models import Event

    if user_id is None:
        return set()
    rows = (
        Event.objects.filter(user_id=user_id, event_type="purchase", item__isnull=False)
        .order_by()
        .values_list(f"item__{item_key_field()}", flat=True)
        .distinct()
    )
    return {str(key) for key in rows}
