"""Serializers of the recommendations API: explicit fields only, never ``__all__``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from recommendations.conf import recommender_settings

PLACEMENT_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_EXCLUDE = 100


class LimitField(serializers.IntegerField):
    """A positive list length; values above MAX_LIMIT are clamped rather than refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return min(value, recommender_settings.MAX_LIMIT)


class RecommendationQuerySerializer(serializers.Serializer):
    limit = LimitField()
    placement = serializers.RegexField(
        PLACEMENT_PATTERN,
        required=False,
        default="default",
        error_messages={"invalid": _("Use 1-64 letters, digits, '_', '-', '.' or ':'.")},
    )
    exclude = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=10_000,
        help_text="Comma-separated item keys to leave out.",
    )

    def validate_exclude(self, value: str) -> list[str]:
        keys = [key.strip() for key in value.split(",") if key.strip()]
        if len(keys) > MAX_EXCLUDE:
            raise serializers.ValidationError(gettext("At most %(max)d item keys.") % {"max": MAX_EXCLUDE})
        return keys


class SimilarQuerySerializer(serializers.Serializer):
    limit = LimitField()
    kind = serializers.ChoiceField(choices=["similar", "bought_together"], required=False, default="similar")


class PopularQuerySerializer(serializers.Serializer):
    limit = LimitField()
    category = serializers.CharField(required=False, allow_blank=False, max_length=255)


class NotInterestedSerializer(serializers.Serializer):
    item = serializers.CharField(max_length=255, help_text="The item key.")


# Fields named "source" below are API fields: DRF's metaclass moves declared fields off the class, so
# they shadow nothing, but the stubs see them as the Field.source attribute.


class RecommendedItemSerializer(serializers.Serializer):
    item = serializers.CharField(source="key")
    name = serializers.CharField()
    url = serializers.CharField()
    score = serializers.FloatField()
    reason = serializers.CharField()
    position = serializers.IntegerField()
    source = serializers.CharField()  # type: ignore[assignment]


class RecommendationListSerializer(serializers.Serializer):
    recommendation_id = serializers.CharField()
    model_version = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]
    placement = serializers.CharField()
    items = RecommendedItemSerializer(many=True)


class NotInterestedResponseSerializer(serializers.Serializer):
    item = serializers.CharField()
    created = serializers.BooleanField()


# --- the list's body without serializer instances ---------------------------------------------------
# DRF builds (deep-copies) every declared field for each serializer instance: for a ten-item list
# that costs more CPU than assembling the list. The declarations above stay the only definition
# (and the schema's); this reads them once and applies the same conversions.
_PLAIN_CONVERSIONS: dict[type, Callable[[Any], Any]] = {
    serializers.CharField: str,
    serializers.FloatField: float,
    serializers.IntegerField: int,
}
Plan = list[tuple[str, str, Any]]


def _plan(serializer_class: type[serializers.Serializer]) -> Plan | None:
    """``(output name, attribute, conversion or nested plan)`` per declared field; None if unsupported."""
    plan: Plan = []
    for name, field in serializer_class._declared_fields.items():
        source = field.source or name
        if field.write_only or "." in source or source == "*":
            return None
        if isinstance(field, serializers.ListSerializer) and isinstance(field.child, serializers.Serializer):
            nested = _plan(type(field.child))
            if nested is None:
                return None
            plan.append((name, source, nested))
        elif type(field) in _PLAIN_CONVERSIONS:
            plan.append((name, source, _PLAIN_CONVERSIONS[type(field)]))
        else:
            return None
    return plan


def _apply(plan: Plan, instance: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, source, how in plan:
        value = getattr(instance, source)
        if value is None:
            out[name] = None  # as DRF: a None attribute is None whatever the field
        elif isinstance(how, list):
            out[name] = [_apply(how, element) for element in value]
        else:
            out[name] = how(value)
    return out


_LIST_PLAN = _plan(RecommendationListSerializer)


def recommendation_list_data(result: Any) -> Any:
    """``RecommendationListSerializer(result).data``, the same values in the same order, computed cheaply."""
    if _LIST_PLAN is None:
        return RecommendationListSerializer(result).data
    return _apply(_LIST_PLAN, result)
