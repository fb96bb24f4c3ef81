"""A profile as a person reads it: features in words with units, interest in every category.

Profiles store feature codes and raw floats (exports and tag rules read those); the admin's
profile page shows each one as a sentence-like label and a value with its unit, money through
the adapter's ``format_price`` (the shop knows its currency), and the share of the shopper's
activity in every category of the catalogue, not only in the stored affinity columns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext, gettext_lazy, ngettext

from recommendations.adapter import get_adapter
from recommendations.conf import recommender_settings
from recommendations.core.profiles.features import AFFINITY_PREFIX, EMBEDDING_PREFIX, compute_features
from recommendations.services.profiles.features import load_catalogue, load_profile_events

# code -> (label in words, unit kind); the kinds are formatted by ``format_feature``.
FEATURE_WORDS: dict[str, tuple[Any, str]] = {
    "recency_days": (gettext_lazy("Last active"), "days_ago"),
    "purchase_recency_days": (gettext_lazy("Last purchase"), "days_ago"),
    "tenure_days": (gettext_lazy("First seen"), "days_ago"),
    "frequency": (gettext_lazy("Orders"), "count"),
    "monetary": (gettext_lazy("Total spent"), "money"),
    "avg_order_value": (gettext_lazy("Average order value"), "money"),
    "events": (gettext_lazy("Events recorded"), "count"),
    "views": (gettext_lazy("Product views"), "count"),
    "carts": (gettext_lazy("Added to cart"), "count"),
    "purchases": (gettext_lazy("Items bought"), "count"),
    "conversion_rate": (gettext_lazy("Items bought per product view"), "percent"),
    "cart_abandonment_rate": (gettext_lazy("Cart additions left unbought"), "percent"),
    "sessions": (gettext_lazy("Visits"), "count"),
    "events_per_session": (gettext_lazy("Events per visit"), "decimal"),
    "peak_events_per_minute": (gettext_lazy("Most events in one minute"), "count"),
    "active_days": (gettext_lazy("Days with activity"), "count"),
    "price_level": (gettext_lazy("Prices looked at, against each category's median"), "price_level"),
    "bot_event_share": (gettext_lazy("Events flagged as automated"), "percent"),
    "propensity": (gettext_lazy("Chance of buying soon"), "percent"),
}


@dataclass
class FeatureRow:
    """One line of the profile's features table."""

    code: str
    label: str
    value: str


def format_feature(kind: str, value: Any) -> str:
    """``value`` with its unit in the active language (``"—"`` when unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    number = float(value)
    if kind == "days_ago":
        days = round(number)
        if days == 0:
            return gettext("today")
        return ngettext("%(days)d day ago", "%(days)d days ago", days) % {"days": days}
    if kind == "count":
        return f"{round(number):,}"
    if kind == "money":
        return get_adapter().format_price(number)
    if kind == "percent":
        return f"{100 * number:.0f}%"
    if kind == "price_level":
        percent = round(100 * (number - 1.0))
        if percent == 0:
            return gettext("at the median")
        if percent > 0:
            return gettext("%(percent)d%% above the median") % {"percent": percent}
        return gettext("%(percent)d%% below the median") % {"percent": -percent}
    return f"{number:.1f}"


def feature_rows(features: Mapping[str, Any]) -> list[FeatureRow]:
    """The profile's base features in words, in the order of ``FEATURE_WORDS``.

    Affinity columns are left out (``category_interest`` shows every category) and so are the
    embedding components (numbers without a meaning of their own).
    """
    rows = []
    for code, (label, kind) in FEATURE_WORDS.items():
        if code in features:
            rows.append(FeatureRow(code, str(label), format_feature(kind, features[code])))
    for code, value in features.items():  # a feature added later still shows, as a number
        known = code in FEATURE_WORDS or code == "top_categories"
        if known or code.startswith((AFFINITY_PREFIX, EMBEDDING_PREFIX)):
            continue
        rows.append(FeatureRow(code, code, format_feature("decimal", value) if value is not None else "—"))
    return rows


def category_interest(user_pk: Any) -> list[tuple[str, int]]:
    """``[(category, percent of the shopper's weighted activity)]`` for every category, largest first.

    Computed from the shopper's events as the profile rebuild does (same weights), so the
    category the page names as the top one heads this list; categories without activity read 0.
    """
    catalogue = load_catalogue()
    if not catalogue.category_names:
        return []
    events = load_profile_events([user_pk], catalogue, restrict=True)
    table = compute_features(
        events,
        now=time.time(),
        category_median_price=catalogue.median_price,
        event_weights=recommender_settings.EVENT_WEIGHTS,
        affinity_columns=list(catalogue.category_names),
    )
    shares = []
    for name in catalogue.category_names:
        value = float(table.column(AFFINITY_PREFIX + name)[0]) if table.values.shape[0] else 0.0
        shares.append((name, 0 if math.isnan(value) else round(100 * value)))
    return sorted(shares, key=lambda pair: (-pair[1], pair[0]))


def reason_text(reason: Mapping[str, Any]) -> str:
    """A tag's reason in words: ``"Share of activity in Garden: 100% (rule: more than 50%)"``."""
    feature = str(reason.get("feature", ""))
    operator = str(reason.get("operator", ""))
    if feature.startswith(AFFINITY_PREFIX):
        label = gettext("Share of activity in %(category)s") % {"category": feature[len(AFFINITY_PREFIX) :]}
        kind = "percent"
    else:
        word, kind = FEATURE_WORDS.get(feature, (feature, "decimal"))
        label = str(word)
    value = format_feature(kind, reason.get("value"))
    threshold = format_feature(kind, reason.get("threshold"))
    comparisons = {
        ">": gettext("more than %(threshold)s"),
        ">=": gettext("at least %(threshold)s"),
        "<": gettext("less than %(threshold)s"),
        "<=": gettext("at most %(threshold)s"),
        "==": gettext("exactly %(threshold)s"),
    }
    rule = comparisons.get(operator, f"{operator} %(threshold)s") % {"threshold": threshold}
    text = gettext("%(label)s: %(value)s (rule: %(rule)s)") % {"label": label, "value": value, "rule": rule}
    percentile = reason.get("percentile")
    if percentile is not None:
        text += " " + gettext("(higher than %(percentile)s%% of shoppers)") % {"percentile": percentile}
    return text
