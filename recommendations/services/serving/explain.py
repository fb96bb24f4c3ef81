"""Human explanations attached to every served item, as codes rendered in the reader's language.

Every reason must be true of the shopper who reads it: "because you viewed X" only names an
item the shopper did view (and never the recommended item itself: an item they had before is
"you viewed this before"); relations between items say what they are ("similar to X",
"bought together with X", "goes with X in your cart") and claim nothing about the reader.

A reason is a :class:`Reason` (a code and the item name or category label it names), not a
sentence: lists computed ahead (precomputed lists, cached real-time rows, assembled lists)
store it packed (``["viewed", "Shoe 1"]``) and :func:`render` words it with ``gettext`` when
a list is served, in the language active for that request. Rows written before reasons were
codes hold the English sentence; :func:`unpack` reads those back into codes (the English
templates are unambiguous), so they are served translated too without a refresh.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from django.utils.translation import gettext, gettext_noop

# code -> msgid; a msgid with ``%(name)s`` names an item, with ``%(label)s`` a category
MESSAGES: dict[str, str] = {
    "viewed": gettext_noop("because you viewed %(name)s"),
    "carted": gettext_noop("because you added %(name)s to your cart"),
    "saved": gettext_noop("because you saved %(name)s"),
    "bought": gettext_noop("because you bought %(name)s"),
    "looked": gettext_noop("because you looked at %(name)s"),
    "viewed_again": gettext_noop("you viewed this before"),
    "carted_again": gettext_noop("you added this to your cart before"),
    "saved_again": gettext_noop("you saved this"),
    "bought_again": gettext_noop("you bought this before"),
    "looked_again": gettext_noop("you looked at this before"),
    "trending": gettext_noop("trending"),
    "new_arrival": gettext_noop("new arrival"),
    "bought_with": gettext_noop("bought together with %(name)s"),
    "goes_with_cart": gettext_noop("goes with %(name)s in your cart"),
    "similar_to": gettext_noop("similar to %(name)s"),
    "popular_in": gettext_noop("popular in %(label)s"),
    "new_in": gettext_noop("new in %(label)s"),
    # an item staff pinned to the list (merchandising)
    "featured": gettext_noop("featured"),
}
# the event type a shopper had -> the code of "because you <did> X"
_VERBS = {
    "view": "viewed",
    "click": "viewed",
    "add_to_cart": "carted",
    "wishlist": "saved",
    "purchase": "bought",
    "remove_from_cart": "looked",
}


class Reason(NamedTuple):
    """Why an item is shown: a code of :data:`MESSAGES` and the name (or label) it mentions."""

    code: str
    name: str = ""

    def pack(self) -> list[str]:
        """The stored form (JSON and cache): ``[code]`` or ``[code, name]``."""
        return [self.code, self.name] if self.name else [self.code]


TRENDING = Reason("trending")
NEW_ARRIVAL = Reason("new_arrival")
FEATURED = Reason("featured")


def render(reason: Reason) -> str:
    """The reason in the active language (English: byte for byte the sentences served before)."""
    message = MESSAGES.get(reason.code)
    if message is None:
        return reason.name or reason.code
    text = gettext(message)
    if "%(" not in message:
        return text
    return text % {"name": reason.name, "label": reason.name}


def english(reason: Reason) -> str:
    """The reason in English whatever the active language (stored descriptions, logs)."""
    message = MESSAGES.get(reason.code)
    if message is None:
        return reason.name or reason.code
    return message % {"name": reason.name, "label": reason.name} if "%(" in message else message


def _legacy_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for code, message in MESSAGES.items():
        regex = (
            re.escape(message).replace(re.escape("%(name)s"), "(.*)").replace(re.escape("%(label)s"), "(.*)")
        )
        patterns.append((re.compile(f"{regex}$", re.DOTALL), code))
    # the fixed sentences first: "trending" must not be read as a name
    return sorted(patterns, key=lambda pattern: "(.*)" in pattern[0].pattern)


_LEGACY = _legacy_patterns()


def unpack(value: Any) -> Reason:
    """A stored reason back as a :class:`Reason` (tolerant of rows written as English text)."""
    if isinstance(value, Reason):
        return value
    if isinstance(value, list | tuple) and value and isinstance(value[0], str):
        return Reason(value[0], str(value[1]) if len(value) > 1 else "")
    text = str(value or "")
    for pattern, code in _LEGACY:
        match = pattern.match(text)
        if match is not None:
            return Reason(code, match.group(1) if match.groups() else "")
    # an unknown sentence (an adapter's own): shown as it was written
    return Reason("text", text)


def because(event_type: str, name: str) -> Reason:
    """ "because you viewed X" (or carted / saved / bought): X is another item the shopper had."""
    return Reason(_VERBS.get(event_type, "viewed"), name)


def again(event_type: str) -> Reason:
    """The recommended item is one the shopper had themselves: "you viewed this before"."""
    return Reason(_VERBS.get(event_type, "viewed") + "_again")


def from_anchor(key: str, anchor: tuple[str, str] | None, name: str) -> Reason:
    """The personal list's reason for ``key`` from its anchor ``(anchor key, event type)``.

    ``name`` is the anchor's display name; the anchor is ``key`` itself when the shopper had the
    recommended item among their recent items (then it is not "because you viewed" itself).
    """
    if anchor is None:
        return TRENDING
    anchor_key, event_type = anchor
    return again(event_type) if anchor_key == key else because(event_type, name)


def bought_with(name: str) -> Reason:
    """An item shoppers buy with, or soon after, X (the item page's "frequently bought together")."""
    return Reason("bought_with", name)


def goes_with_cart(name: str) -> Reason:
    """A complement of X, an item in the reader's cart."""
    return Reason("goes_with_cart", name)


def similar_to(name: str) -> Reason:
    """An item like X (stored relations, the model's nearest items)."""
    return Reason("similar_to", name)


def popular_in(label: str) -> Reason:
    """Popular in a category (``trending`` without a label)."""
    return Reason("popular_in", label) if label else TRENDING


def new_in(label: str) -> Reason:
    """New in a category (``new arrival`` without a label)."""
    return Reason("new_in", label) if label else NEW_ARRIVAL
