"""Human explanations attached to every served item."""

from __future__ import annotations

_VERBS = {
    "view": "because you viewed {name}",
    "click": "because you viewed {name}",
    "add_to_cart": "because you added {name} to your cart",
    "wishlist": "because you saved {name}",
    "purchase": "because you bought {name}",
    "remove_from_cart": "because you looked at {name}",
}

TRENDING = "trending"
NEW_ARRIVAL = "new arrival"


def because(event_type: str, name: str) -> str:
    """ "because you viewed X" (or carted / saved / bought)."""
    return _VERBS.get(event_type, "because you viewed {name}").format(name=name)


def bought_with(name: str) -> str:
    return f"often bought with {name}"


def similar_to(name: str) -> str:
    return f"similar to {name}"


def popular_in(label: str) -> str:
    return f"popular in {label}" if label else TRENDING


def new_in(label: str) -> str:
    return f"new in {label}" if label else NEW_ARRIVAL
