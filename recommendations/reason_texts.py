"""The words of recommendation reasons, by code, marked for translation.

A reason is stored and sent as a code with its parameters (``{"code": "viewed", "params":
{"name": ...}}``); the text is looked up here and translated when it is shown. The msgids are
marked with ``gettext_noop`` so ``makemessages`` keeps them in the catalogue.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

REASON_TEXTS: dict[str, str] = {
    "viewed": gettext_noop("because you viewed %(name)s"),
    "added_to_cart": gettext_noop("because you added %(name)s to your cart"),
    "saved": gettext_noop("because you saved %(name)s"),
    "bought": gettext_noop("because you bought %(name)s"),
    "looked_at": gettext_noop("because you looked at %(name)s"),
    "viewed_before": gettext_noop("you viewed this before"),
    "added_to_cart_before": gettext_noop("you added this to your cart before"),
    "saved_before": gettext_noop("you saved this"),
    "bought_before": gettext_noop("you bought this before"),
    "looked_at_before": gettext_noop("you looked at this before"),
    "trending": gettext_noop("trending"),
    "new_arrival": gettext_noop("new arrival"),
    "bought_together": gettext_noop("bought together with %(name)s"),
    "goes_with_cart": gettext_noop("goes with %(name)s in your cart"),
    "similar_to": gettext_noop("similar to %(name)s"),
    "popular_in": gettext_noop("popular in %(label)s"),
    "new_in": gettext_noop("new in %(label)s"),
}
