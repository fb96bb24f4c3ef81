"""Serializers of the recommendations API: explicit fields only, never ``__all__``."""

from __future__ import annotations

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
        error_messages={"invalid": "Use 1-64 letters, digits, '_', '-', '.' or ':'."},
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
            raise serializers.ValidationError(f"At most {MAX_EXCLUDE} item keys.")
        return keys


class SimilarQuerySerializer(serializers.Serializer):
    limit = LimitField()
    kind = serializers.ChoiceField(choices=["similar", "bought_together"], required=False, default="similar")


class PopularQuerySerializer(serializers.Serializer):
    limit = LimitField()
    category = serializers.CharField(required=False, allow_blank=False, max_length=255)


class NotInterestedSerializer(serializers.Serializer):
    item = serializers.CharField(max_length=255, help_text="The item key.")


class RecommendedItemSerializer(serializers.Serializer):
    item = serializers.CharField(source="key")
    name = serializers.CharField()
    url = serializers.CharField()
    score = serializers.FloatField()
    reason = serializers.CharField()
    position = serializers.IntegerField()
    source = serializers.CharField()


class RecommendationListSerializer(serializers.Serializer):
    recommendation_id = serializers.CharField()
    model_version = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    placement = serializers.CharField()
    items = RecommendedItemSerializer(many=True)


class NotInterestedResponseSerializer(serializers.Serializer):
    item = serializers.CharField()
    created = serializers.BooleanField()
