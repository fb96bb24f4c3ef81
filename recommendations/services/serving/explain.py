"""Human explanations attached to every served item.

Every reason must be true of the shopper who reads it: "because you viewed X" only names an
item the shopper did view (and never the recommended item itself: an item they had before is
"you viewed this before"); relations between items say what they are ("similar to X",
"bought together with X", "goes with X in your cart") and claim nothing about the reader.
"""

from __future__ import annotations

_VERBS = {
    "view": "because you viewed {name}",
    "click": "because you viewed {name}",
    "add_to_cart": "because you added {name} to your cart",
    "wishlist": "because you saved {name}",
    "purchase": "because you bought {name}",
    "remove_from_cart": "because you looked at {name}",
}
_AGAIN = {
    "view": "you viewed this before",
    "click": "you viewed this before",
    "add_to_cart": "you added this to your cart before",
    "wishlist": "you saved this",
    "purchase": "you bought this before",
    "remove_from_cart": "you looked at this before",
}

TRENDING = "trending"
NEW_ARRIVAL = "new arrival"


def because(event_type: str, name: str) -> str:
    """ "because you viewed X" (or carted / saved / bought): X is another item the shopper had."""
    return _VERBS.get(event_type, "because you viewed {name}").format(name=name)


def again(event_type: str) -> str:
    """The recommended item is one the shopper had themselves: "you viewed this before"."""
    return _AGAIN.get(event_type, "you viewed this before")


def from_anchor(key: str, anchor: tuple[str, str] | None, name: str) -> str:
    """The personal list's reason for ``key`` from its anchor ``(anchor key, event type)``.

    ``name`` is the anchor's display name; the anchor is ``key`` itself when the shopper had the
    recommended item among their recent items (then it is not "because you viewed" itself).
    """
    if anchor is None:
        return TRENDING
    anchor_key, event_type = anchor
    return again(event_type) if anchor_key == key else because(event_type, name)


def bought_with(name: str) -> str:
    """An item shoppers buy with, or soon after, X (the item page's "frequently bought together")."""
    return f"bought together with {name}"


def goes_with_cart(name: str) -> str:
    """A complement of X, an item in the reader's cart."""
    return f"goes with {name} in your cart"


def similar_to(name: str) -> str:
    return f"similar to {name}"


def popular_in(label: str) -> str:
    return f"popular in {label}" if label else TRENDING


def new_in(label: str) -> str:
    return f"new in {label}" if label else NEW_ARRIVAL
