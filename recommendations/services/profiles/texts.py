"""How stored profile codes read in the reader's language: tags, their reasons, feature names.

Profiles store codes and numbers (see ``recommendations.core.profiles.tags``); this module
turns them into words when a page or an API response is produced, so one stored profile
reads in English for one member of staff and in Chinese for another. A custom rule's label
and description (set in the project's settings) are data and are shown as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext, gettext_noop, pgettext_lazy

from recommendations.core.profiles.features import AFFINITY_PREFIX, EMBEDDING_PREFIX

# code -> (label, description); "%(category)s" is filled from the tag's params.
TAG_TEXTS: dict[str, tuple[str, str]] = {
    "high_value": (
        gettext_noop("high value"),
        # xgettext:no-python-format
        gettext_noop("Spent more than 90% of the customers who bought anything."),
    ),
    "loyal": (gettext_noop("loyal"), gettext_noop("Placed at least three orders.")),
    "new_customer": (gettext_noop("new customer"), gettext_noop("First seen within the last two weeks.")),
    "churn_risk": (
        gettext_noop("churn risk"),
        gettext_noop("Bought before, but not for 60 days and not active for 30."),
    ),
    "cart_abandoner": (
        gettext_noop("cart abandoner"),
        gettext_noop("Leaves at least three quarters of cart additions unbought."),
    ),
    "bargain_hunter": (
        gettext_noop("bargain hunter"),
        # xgettext:no-python-format
        gettext_noop("Looks at items at least 20% cheaper than their category's median price."),
    ),
    "likely_buyer": (
        gettext_noop("likely buyer"),
        # xgettext:no-python-format
        gettext_noop("Purchase propensity of 60% or more."),
    ),
    "window_shopper": (
        gettext_noop("window shopper"),
        gettext_noop("Views a lot (15+ items) but never bought."),
    ),
    "fan_of": (
        gettext_noop("fan of %(category)s"),
        gettext_noop("More than half of the activity is in %(category)s."),
    ),
}
# Built-in codes whose label names a category: their rule's feature must hold "{category}".
CATEGORY_CODES = frozenset({"fan_of"})

# Profiles built before tags had codes stored the English label; read them as their code.
_LEGACY_LABELS = {
    "high value": "high_value",
    "loyal": "loyal",
    "new customer": "new_customer",
    "churn risk": "churn_risk",
    "cart abandoner": "cart_abandoner",
    "bargain hunter": "bargain_hunter",
    "likely buyer": "likely_buyer",
    "window shopper": "window_shopper",
}
_LEGACY_FAN_PREFIX = "fan of "

# The English label is the feature's own name (what staff configure rules and read exports by);
# other languages get words. A context, since "views" or "events" may read otherwise elsewhere.
FEATURE_LABELS: dict[str, Any] = {
    "recency_days": pgettext_lazy("profile feature", "recency_days"),
    "purchase_recency_days": pgettext_lazy("profile feature", "purchase_recency_days"),
    "tenure_days": pgettext_lazy("profile feature", "tenure_days"),
    "frequency": pgettext_lazy("profile feature", "frequency"),
    "monetary": pgettext_lazy("profile feature", "monetary"),
    "avg_order_value": pgettext_lazy("profile feature", "avg_order_value"),
    "events": pgettext_lazy("profile feature", "events"),
    "views": pgettext_lazy("profile feature", "views"),
    "carts": pgettext_lazy("profile feature", "carts"),
    "purchases": pgettext_lazy("profile feature", "purchases"),
    "conversion_rate": pgettext_lazy("profile feature", "conversion_rate"),
    "cart_abandonment_rate": pgettext_lazy("profile feature", "cart_abandonment_rate"),
    "sessions": pgettext_lazy("profile feature", "sessions"),
    "events_per_session": pgettext_lazy("profile feature", "events_per_session"),
    "peak_events_per_minute": pgettext_lazy("profile feature", "peak_events_per_minute"),
    "active_days": pgettext_lazy("profile feature", "active_days"),
    "price_level": pgettext_lazy("profile feature", "price_level"),
    "bot_event_share": pgettext_lazy("profile feature", "bot_event_share"),
    "propensity": pgettext_lazy("profile feature", "propensity"),
}
_AFFINITY_LABEL = pgettext_lazy("profile feature", "affinity:%(category)s")
_EMBEDDING_LABEL = pgettext_lazy("profile feature", "embedding_%(index)s")


def feature_label(name: str) -> str:
    """A feature column's name in the active language (``affinity:Garden`` keeps its category)."""
    if name.startswith(AFFINITY_PREFIX):
        return str(_AFFINITY_LABEL) % {"category": name[len(AFFINITY_PREFIX) :]}
    if name.startswith(EMBEDDING_PREFIX):
        return str(_EMBEDDING_LABEL) % {"index": name[len(EMBEDDING_PREFIX) :]}
    return str(FEATURE_LABELS.get(name, name))


def _code_and_params(tag: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The built-in code of a stored tag (``""`` for a custom rule's), reading old rows too."""
    code = tag.get("code")
    if code in TAG_TEXTS and "description" not in tag:
        return code, dict(tag.get("params") or {})
    if code is None:  # a tag stored before codes: its label was the English sentence
        label = str(tag.get("label", ""))
        if label in _LEGACY_LABELS:
            return _LEGACY_LABELS[label], {}
        if label.startswith(_LEGACY_FAN_PREFIX):
            return "fan_of", {"category": label[len(_LEGACY_FAN_PREFIX) :]}
    return "", {}


def _fill(template: str, params: Mapping[str, Any]) -> str:
    try:
        return template % params if "%(" in template else template
    except (KeyError, TypeError, ValueError):  # a catalogue entry must never break a page
        return template


def render_tag(tag: Mapping[str, Any]) -> dict[str, Any]:
    """A stored tag as shown: ``{code, key, label, description, params, weight, reasons}`` in the
    active language; every reason gains ``feature_label``."""
    code, params = _code_and_params(tag)
    if code:
        label_id, description_id = TAG_TEXTS[code]
        label, description = _fill(gettext(label_id), params), _fill(gettext(description_id), params)
    else:
        label, description = str(tag.get("label", "")), str(tag.get("description", ""))
        params = dict(tag.get("params") or {})
    reasons = [
        {**reason, "feature_label": feature_label(str(reason.get("feature", "")))}
        for reason in tag.get("reasons") or []
    ]
    return {
        "code": code,
        "key": str(tag.get("label", "")),
        "label": label,
        "description": description,
        "params": params,
        "weight": tag.get("weight", 1.0),
        "reasons": reasons,
    }


def render_tags(tags: Any) -> list[dict[str, Any]]:
    """``render_tag`` over a profile's stored tags (``None`` or a malformed value: none)."""
    return [render_tag(tag) for tag in tags or [] if isinstance(tag, Mapping)]


def tag_key_label(key: str) -> str:
    """The label of a tag key as stored in ``ProfileTag`` (``"fan_of:Garden"``, an old English label, or
    a custom label)."""
    code, _, category = key.partition(":")
    if code in TAG_TEXTS:
        params = {"category": category} if category else {}
        return render_tag({"code": code, "label": key, "params": params})["label"]
    return render_tag({"label": key})["label"]
