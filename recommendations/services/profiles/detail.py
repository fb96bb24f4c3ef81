"""What the admin's profile page shows besides the fields: features, tags, timeline, recommendations."""

from __future__ import annotations

import logging
from typing import Any

from django.utils.translation import gettext

from behavior.items import item_key
from behavior.models import Event
from recommendations.adapter import get_adapter
from recommendations.models import UserProfile
from recommendations.services.profiles.display import category_interest, feature_rows, reason_text
from recommendations.services.profiles.explanations import (
    note_texts,
    outlier_reason_text,
    segment_description,
    segment_title,
)
from recommendations.services.profiles.texts import render_tags

logger = logging.getLogger(__name__)

TIMELINE_LENGTH = 30
RECOMMENDATIONS_SHOWN = 10


def recent_events(user_id: Any, *, limit: int = TIMELINE_LENGTH) -> list[dict[str, Any]]:
    """The user's latest events, newest first (one query)."""
    adapter = get_adapter()
    events = (
        Event.objects.filter(user_id=user_id).select_related("item").order_by("-occurred_at", "-pk")[:limit]
    )
    return [
        {
            "occurred_at": event.occurred_at,
            "event_type": event.get_event_type_display(),
            "item": str(event.item) if event.item is not None else "",
            "item_key": item_key(event.item) if event.item is not None else "",
            "value": adapter.format_price(event.value) if event.value is not None else "",
            "placement": event.placement,
            "is_bot": event.is_bot,
        }
        for event in events
    ]


def current_recommendations(
    user: Any, *, limit: int = RECOMMENDATIONS_SHOWN
) -> tuple[list[dict[str, Any]], str]:
    """``(items, error)``: the user's recommendations as served now, or why they cannot be shown."""
    try:
        from recommendations.services.serving import recommend_for
    except ImportError:
        return [], gettext("The serving layer is not installed, so no recommendations can be shown.")
    try:
        result = recommend_for(user=user, placement="admin", limit=limit)
    except Exception as exc:  # the page must render even when serving is broken
        logger.exception("recommend_for failed on the admin profile page")
        reason = f"{exc.__class__.__name__}: {exc}"
        return [], gettext("Recommendations could not be computed: %(reason)s") % {"reason": reason}
    adapter = get_adapter()
    items = [
        {
            "position": rec.position,
            "key": rec.key,
            "name": str(rec.item),
            "score": rec.score,
            "reason": rec.reason,
            "source": rec.source,
            "price": adapter.format_price(rec.price),
        }
        for rec in result.items
    ]
    return items, ""


def profile_detail_context(profile: UserProfile) -> dict[str, Any]:
    """Template context of the admin's profile page."""
    features = profile.features or {}
    segment = profile.segment
    recommendations, error = current_recommendations(profile.user)
    tags = render_tags(profile.tags)
    for tag in tags:
        tag["reason_texts"] = [reason_text(reason) for reason in tag["reasons"]]
    return {
        "profile_obj": profile,
        "profile_name": profile.user.get_username(),
        "profile_features": feature_rows(features),
        "category_interest": category_interest(profile.pk),
        "profile_tags": tags,
        "profile_notes": note_texts(profile.notes),
        "segment_title": segment_title(segment.number, segment.traits, segment.name) if segment else "",
        "segment_description": segment_description(segment.traits, segment.description) if segment else "",
        "outlier_reason": outlier_reason_text(profile.outlier_reason),
        "timeline": recent_events(profile.pk),
        "recommendations": recommendations,
        "recommendations_error": error,
    }
