"""What the blocks of one page share: items shown so far, the shopper's state, items looked up.

A page (one request) may show several blocks (template tags, the API's one list); each block
leaves out what an earlier one showed and reuses the shopper's history and the items already
looked up. The service keeps that state itself, keyed weakly by the request object (it goes
with the request), instead of setting attributes on a face's request.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from recommendations.services.serving.history import ShopperState, load_state
from recommendations.services.serving.state import purchased_keys_cached


@dataclass
class Page:
    """One request's shared serving state."""

    shown: set[str] = field(default_factory=set)
    state: ShopperState | None = None
    #: items looked up so far, ``{key: item or None}`` (see ``assembly.assemble``)
    known: dict[str, Any] = field(default_factory=dict)


_pages: weakref.WeakKeyDictionary[Any, Page] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def page_of(request: Any) -> Page:
    """The request's :class:`Page` (a fresh one, shared with nothing, without a usable request)."""
    if request is None:
        return Page()
    try:
        with _lock:
            page = _pages.get(request)
            if page is None:
                page = _pages[request] = Page()
    except TypeError:  # an object that takes no weak reference: nothing is shared
        return Page()
    return page


def shopper_state(request: Any, *, user: Any = None, visitor_id: str = "") -> ShopperState:
    """The shopper's state, read once per request (several blocks on one page share it)."""
    if request is None:
        return load_state(user=user, visitor_id=visitor_id)
    page = page_of(request)
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    user_id = getattr(user, "pk", None) if authenticated else None
    state = page.state
    if state is None or state.user_id != user_id or state.visitor_id != (visitor_id or ""):
        state = page.state = load_state(user=user, visitor_id=visitor_id)
    return state


def request_shopper(request: Any) -> tuple[Any, str]:
    """``(authenticated user or None, visitor id)`` of a request."""
    user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return user, getattr(request, "visitor_id", "") or ""


def shopper_ids(request: Any) -> dict[str, Any]:
    """``{"user_id": ..., "visitor_id": ...}`` of a request's shopper (None and "" without a request)."""
    if request is None:
        return {"user_id": None, "visitor_id": ""}
    user, visitor_id = request_shopper(request)
    return {"user_id": getattr(user, "pk", None) if user is not None else None, "visitor_id": visitor_id}


def bought_by_shopper(request: Any) -> set[str]:
    """Items the request's shopper bought: never offered back to them, in any block."""
    if request is None:
        return set()
    user, visitor_id = request_shopper(request)
    if user is None and not visitor_id:
        return set()
    state = shopper_state(request, user=user, visitor_id=visitor_id)
    return state.keys_with_type("purchase") | purchased_keys_cached(
        state.user_id, state.latest_ts, oldest_ts=state.oldest_ts
    )
