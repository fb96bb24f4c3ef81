"""How stored segment traits, outlier reasons and profile notes read in the reader's language.

The core returns codes and numbers (``recommendations.core.profiles``); rebuilds store them
as JSON and this module puts them into words when a page, an API response or an export is
produced. Rows written before the codes hold English sentences: they are shown as written
(tolerant reader). Unlike old tag labels, nothing matches on those sentences (no filter,
no key), they embed figures that cannot be parsed back reliably, and the next full rebuild
replaces every segment and every profile's reason and notes, so mapping them is not worth it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext, ngettext_lazy, pgettext, pgettext_lazy

from recommendations.core.profiles.features import HEURISTIC_PROPENSITY_FORMULA
from recommendations.services.profiles.texts import feature_label, tag_key_label

# Segment traits (codes of ``recommendations.core.profiles.segments.TRAITS``).
TRAIT_TEXTS: dict[str, Any] = {
    "frequent": pgettext_lazy("segment trait", "frequent"),
    "occasional": pgettext_lazy("segment trait", "occasional"),
    "high_spenders": pgettext_lazy("segment trait", "high spenders"),
    "low_spenders": pgettext_lazy("segment trait", "low spenders"),
    "big_baskets": pgettext_lazy("segment trait", "big baskets"),
    "small_baskets": pgettext_lazy("segment trait", "small baskets"),
    "lapsed": pgettext_lazy("segment trait", "lapsed"),
    "recently_active": pgettext_lazy("segment trait", "recently active"),
    "fast_clickers": pgettext_lazy("segment trait", "bot-like fast clickers"),
    "long_sessions": pgettext_lazy("segment trait", "long sessions"),
    "short_visits": pgettext_lazy("segment trait", "short visits"),
    "converting": pgettext_lazy("segment trait", "converting"),
    "non_converting": pgettext_lazy("segment trait", "non-converting"),
    "cart_abandoners": pgettext_lazy("segment trait", "cart abandoners"),
    "heavy_browsers": pgettext_lazy("segment trait", "heavy browsers"),
    "light_browsers": pgettext_lazy("segment trait", "light browsers"),
    "premium": pgettext_lazy("segment trait", "premium"),
    "bargain": pgettext_lazy("segment trait", "bargain"),
    "likely_buyers": pgettext_lazy("segment trait", "likely buyers"),
    "unlikely_buyers": pgettext_lazy("segment trait", "unlikely buyers"),
    "long_standing": pgettext_lazy("segment trait", "long-standing"),
    "new": pgettext_lazy("segment trait", "new"),
}

# Outlier reasons: code (the feature) -> (template, how its figures are written).
REASON_TEXTS: dict[str, tuple[Any, str]] = {
    "peak_events_per_minute": (
        pgettext_lazy(
            "outlier reason", "bot-like event rate: %(value)s events in one minute (median %(median)s)"
        ),
        ".0f",
    ),
    "events_per_session": (
        pgettext_lazy(
            "outlier reason", "bot-like sessions: %(value)s events per session (median %(median)s)"
        ),
        ".0f",
    ),
    "events": (
        pgettext_lazy("outlier reason", "unusual activity volume: %(value)s events (median %(median)s)"),
        ".0f",
    ),
    "bot_event_share": (pgettext_lazy("outlier reason", "%(value)s of events flagged as bot traffic"), ".0%"),
    "avg_order_value": (
        pgettext_lazy("outlier reason", "unusual order values: average order %(value)s (median %(median)s)"),
        ".2f",
    ),
    "monetary": (
        pgettext_lazy("outlier reason", "unusual spending: %(value)s in total (median %(median)s)"),
        ".2f",
    ),
    "conversion_rate": (
        pgettext_lazy("outlier reason", "unusual conversion rate: %(value)s (median %(median)s)"),
        ".0%",
    ),
}
# The most a stored reason may take (``UserProfile.outlier_reason``'s max_length).
REASON_MAX_LENGTH = 255

# Profile notes: code -> template (a counted one takes its plural form from its params).
NOTE_TEXTS: dict[str, Any] = {
    "no_events": pgettext_lazy(
        "profile note", "no events: every behaviour feature is unknown and filled with the median"
    ),
    "no_purchases": pgettext_lazy(
        "profile note", "no purchases: purchase recency and order value are unknown (filled with the median)"
    ),
    "no_views": pgettext_lazy("profile note", "no views: conversion rate unknown (filled with the median)"),
    "no_price_level": pgettext_lazy(
        "profile note", "no priced items in a category: price level unknown (filled with the median)"
    ),
    "no_category_activity": pgettext_lazy("profile note", "no category activity: affinities are zero"),
    "not_linked": pgettext_lazy(
        "profile note",
        "no events recorded for this account (anonymous browsing before login is not linked to it): "
        "not placed in a segment",
    ),
    "no_categories": pgettext_lazy(
        "profile note", "the item model has no categories: affinities and price level are skipped"
    ),
    "no_active_model": pgettext_lazy(
        "profile note",
        "no active model: behaviour embedding skipped; propensity from the heuristic %(formula)s",
    ),
    "no_propensity_head": pgettext_lazy(
        "profile note",
        "the active model v%(version)s has no propensity head: propensity from the heuristic %(formula)s",
    ),
    "no_propensity_head_because": pgettext_lazy(
        "profile note",
        "the active model v%(version)s has no propensity head (%(why)s): "
        "propensity from the heuristic %(formula)s",
    ),
    "no_priced_purchases": ngettext_lazy(
        "monetary: the only purchase has no known price (filled with the median)",
        "monetary: none of the %(purchases)d purchases has a known price (filled with the median)",
        "purchases",
    ),
    "unpriced_purchases": ngettext_lazy(
        "monetary: %(count)d purchase without a known price left out",
        "monetary: %(count)d purchases without a known price left out",
        "count",
    ),
}

REBUILD_KINDS: dict[str, Any] = {
    "full": pgettext_lazy("profile rebuild", "full"),
    "incremental": pgettext_lazy("profile rebuild", "incremental"),
    "skipped": pgettext_lazy("profile rebuild", "skipped"),
}


def _fill(template: str, params: Mapping[str, Any]) -> str:
    try:
        return template % params if "%(" in template else template
    except (KeyError, TypeError, ValueError):  # a catalogue entry must never break a page
        return template


def _figure(value: Any, spec: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return "—"


def rebuild_kind_label(kind: str) -> str:
    """``"full"``, ``"incremental"`` or ``"skipped"`` in the active language."""
    return str(REBUILD_KINDS.get(kind, kind))


# --- segments ---------------------------------------------------------------------------------


def segment_name(traits: Mapping[str, Any] | None, stored_name: str = "") -> str:
    """A segment's name from its stored traits (``Segment.traits``); an old row's stored name as is."""
    if not traits:
        return stored_name
    qualities = [str(TRAIT_TEXTS.get(code, code)) for code in traits.get("qualities") or []]
    nouns = [str(TRAIT_TEXTS.get(code, code)) for code in traits.get("nouns") or []]
    category = traits.get("category")
    if not qualities and not nouns and not category:
        name = pgettext("segment name", "typical shoppers")
    else:
        head = nouns[0] if nouns else pgettext("segment name", "shoppers")
        if len(nouns) > 1:
            head = pgettext("segment name", "%(noun)s and %(other_noun)s") % {
                "noun": head,
                "other_noun": nouns[1],
            }
        if len(qualities) > 1:
            template = pgettext("segment name", "%(quality)s %(other_quality)s %(noun)s")
            name = template % {"quality": qualities[0], "other_quality": qualities[1], "noun": head}
        elif qualities:
            name = pgettext("segment name", "%(quality)s %(noun)s") % {"quality": qualities[0], "noun": head}
        else:
            name = head
        if category:
            name = pgettext("segment name", "%(name)s, %(category)s") % {"name": name, "category": category}
    ordinal = traits.get("ordinal") or 1
    if ordinal > 1:
        name = pgettext("segment name", "%(name)s (%(ordinal)s)") % {"name": name, "ordinal": ordinal}
    return name[:1].upper() + name[1:]


def segment_description(traits: Mapping[str, Any] | None, stored_description: str = "") -> str:
    """What distinguishes a segment, from its stored traits; an old row's stored description as is."""
    if not traits:
        return stored_description
    details = [_detail(detail) for detail in traits.get("details") or [] if isinstance(detail, Mapping)]
    if not details:
        return gettext("Close to the average on every feature.")
    joined = pgettext("list separator", "; ").join(details)
    return gettext("Compared with all users: %(details)s.") % {"details": joined}


def _detail(detail: Mapping[str, Any]) -> str:
    value, overall = detail.get("value"), detail.get("overall")
    if "category" in detail:
        return gettext("%(category)s: %(value)s of activity (overall %(overall)s)") % {
            "category": detail["category"],
            "value": _figure(value, ".0%"),
            "overall": _figure(overall, ".0%"),
        }
    feature = str(detail.get("feature", ""))
    label = feature_label(feature)
    if feature.endswith("_rate"):
        params = {"feature": label, "value": _figure(value, ".0%"), "overall": _figure(overall, ".0%")}
        return gettext("%(feature)s %(value)s (overall %(overall)s)") % params
    if isinstance(value, int | float) and isinstance(overall, int | float) and abs(overall) > 1e-9:
        return gettext("%(feature)s %(value)s (%(ratio)sx the average %(overall)s)") % {
            "feature": label,
            "value": _figure(value, ".3g"),
            "ratio": _figure(value / overall, ".1f"),
            "overall": _figure(overall, ".3g"),
        }
    params = {"feature": label, "value": _figure(value, ".3g"), "overall": _figure(overall, ".3g")}
    return gettext("%(feature)s %(value)s (overall %(overall)s)") % params


def segment_title(number: int, traits: Mapping[str, Any] | None, stored_name: str = "") -> str:
    """``"<number>: <name>"``, as lists and charts show a segment."""
    return f"{number}: {segment_name(traits, stored_name)}"


# --- outlier reasons --------------------------------------------------------------------------


def encode_outlier_reason(reasons: Sequence[Mapping[str, Any]]) -> str:
    """The reasons of one outlier as stored (compact JSON; ``"[]"`` = isolated, no single feature).

    Reasons are dropped from the end, never cut, so the text stays valid JSON within the column.
    """
    parts = list(reasons)
    while True:
        text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
        if len(text) <= REASON_MAX_LENGTH or not parts:
            return text
        parts.pop()


def outlier_reason_text(stored: str) -> str:
    """A stored outlier reason in the active language (an old English sentence as written)."""
    if not stored or not stored.startswith("["):
        return stored
    try:
        reasons = json.loads(stored)
    except ValueError:
        return stored
    parts = []
    for reason in reasons if isinstance(reasons, list) else []:
        if not isinstance(reason, Mapping) or reason.get("code") not in REASON_TEXTS:
            continue
        template, spec = REASON_TEXTS[str(reason["code"])]
        params = {"value": _figure(reason.get("value"), spec), "median": _figure(reason.get("median"), spec)}
        parts.append(_fill(str(template), params))
    if not parts:
        return pgettext(
            "outlier reason", "unusual combination of behaviour (isolated from every dense group)"
        )
    return pgettext("list separator", "; ").join(parts)


# --- notes ------------------------------------------------------------------------------------


def note_text(note: Any) -> str:
    """One stored note (``{"code", "params"}``) in the active language; an old English note as written."""
    if isinstance(note, str):
        return note
    if not isinstance(note, Mapping):
        return ""
    code, params = str(note.get("code", "")), dict(note.get("params") or {})
    params.setdefault("formula", HEURISTIC_PROPENSITY_FORMULA)
    if code == "no_propensity_head" and params.get("why"):
        code = "no_propensity_head_because"
    if code not in NOTE_TEXTS:
        return code
    try:  # a lazy plural picks its form from its number's key here
        return str(NOTE_TEXTS[code] % params)
    except (KeyError, TypeError, ValueError):  # a catalogue entry must never break a page
        return str(NOTE_TEXTS[code])


def note_texts(notes: Any) -> list[str]:
    """``note_text`` over a profile's (or a run's) stored notes (``None`` or malformed: none)."""
    return [text for text in (note_text(note) for note in notes or [] if note) if text]


def run_summary_rows(summary: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A profile run's stored summary as ``(label, value)`` rows in the active language.

    The summary keeps codes (tag keys, note codes) so that it reads the same in every language;
    staff read it through this, never as raw JSON.
    """

    summary = summary or {}
    rows: list[tuple[str, str]] = []
    for key, label in (
        ("users", gettext("Shoppers profiled")),
        ("users_without_events", gettext("Shoppers without events")),
        ("outliers", gettext("Outliers")),
        ("propensity_source", gettext("Propensity from")),
        ("seconds", gettext("Seconds")),
        ("chunks", gettext("Chunks")),
    ):
        if summary.get(key) not in (None, ""):
            rows.append((label, str(summary[key])))
    kept = summary.get("kept_users") or []
    if kept:  # key ranges of the chunks that failed for good
        rows.append((gettext("Users who kept their previous profiles"), ", ".join(str(r) for r in kept)))
    tags = summary.get("tag_counts") or {}
    if isinstance(tags, Mapping) and tags:
        rows.append((gettext("Tags"), ", ".join(f"{tag_key_label(str(k))} ({n})" for k, n in tags.items())))
    for text in note_texts(summary.get("notes")):
        rows.append((gettext("Note"), text))
    return rows
