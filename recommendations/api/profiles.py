"""``GET /api/profiles/<username>/`` (view-profiles permission) and ``GET /api/profiles/me/`` (own)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import Http404
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.generics import RetrieveAPIView

from behavior.throttling import ResilientScopedRateThrottle
from recommendations.api.permissions import CanViewProfiles
from recommendations.models import Segment, UserProfile
from recommendations.services.profiles import explanations
from recommendations.services.profiles.texts import render_tag


class OwnSegmentSerializer(serializers.Serializer):
    """A segment's name and description, put into the reader's language from its stored traits."""

    name = serializers.SerializerMethodField(help_text="In the reader's language.")
    description = serializers.SerializerMethodField(help_text="In the reader's language.")

    def get_name(self, obj: Segment) -> str:
        return explanations.segment_name(obj.traits, obj.name)

    def get_description(self, obj: Segment) -> str:
        return explanations.segment_description(obj.traits, obj.description)


class SegmentSerializer(OwnSegmentSerializer):
    number = serializers.IntegerField(read_only=True)


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    feature_label = serializers.CharField(help_text="The feature's name in the reader's language.")
    value = serializers.FloatField()
    operator = serializers.CharField()
    threshold = serializers.FloatField()
    percentile = serializers.FloatField(required=False)


class _RenderedTagSerializer(serializers.Serializer):
    """A stored tag (codes and numbers) rendered in the request's language first."""

    code = serializers.CharField(
        allow_blank=True, help_text='The built-in tag\'s code ("high_value"); empty for a custom rule.'
    )
    # The API's field is called "label"; DRF's Field also has a ``label`` attribute (its title).
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="In the reader's language (a custom rule's label as written)."
    )
    description = serializers.CharField(allow_blank=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return super().to_representation(render_tag(instance))


class TagSerializer(_RenderedTagSerializer):
    params = serializers.DictField(help_text='{"category": ...} for a tag of one category.')
    weight = serializers.FloatField()
    reasons = ReasonSerializer(many=True)


class StaffProfileSerializer(serializers.ModelSerializer):
    """Everything staff review: segment, tags with reasons, propensity, features, outlier flag."""

    username = serializers.CharField(source="user.get_username", read_only=True)
    segment = SegmentSerializer(read_only=True)
    tags = TagSerializer(many=True, read_only=True)
    outlier_reason = serializers.SerializerMethodField(help_text="In the reader's language.")
    notes = serializers.SerializerMethodField(
        help_text="What is missing or estimated, in the reader's language."
    )

    class Meta:
        model = UserProfile
        fields = [
            "username",
            "segment",
            "tags",
            "propensity",
            "propensity_source",
            "is_outlier",
            "outlier_reason",
            "features",
            "last_activity_at",
            "updated_at",
            "model_version",
            "notes",
        ]

    def get_outlier_reason(self, obj: UserProfile) -> str:
        return explanations.outlier_reason_text(obj.outlier_reason)

    def get_notes(self, obj: UserProfile) -> list[str]:
        return explanations.note_texts(obj.notes)


class OwnTagSerializer(_RenderedTagSerializer):
    pass


class OwnProfileSerializer(serializers.ModelSerializer):
    """What a shopper sees of their own profile: their segment and tags, nothing internal."""

    username = serializers.CharField(source="user.get_username", read_only=True)
    segment = OwnSegmentSerializer(read_only=True)
    tags = OwnTagSerializer(many=True, read_only=True)

    class Meta:
        model = UserProfile
        fields = ["username", "segment", "tags", "updated_at"]


class ProfileDetailView(RetrieveAPIView):
    """A user's profile, for holders of ``recommendations.view_userprofile`` (others: 403 for
    every username, so nothing leaks)."""

    serializer_class = StaffProfileSerializer
    permission_classes = [CanViewProfiles]
    throttle_classes = [ResilientScopedRateThrottle]
    throttle_scope = "profiles"

    def get_object(self) -> UserProfile:
        field = get_user_model().USERNAME_FIELD
        profile = (
            UserProfile.objects.select_related("user", "segment")
            .filter(**{f"user__{field}": self.kwargs["username"]})
            .first()
        )
        if profile is None:
            raise Http404(gettext("No profile has been built for this user."))
        return profile


class MyProfileView(RetrieveAPIView):
    """The signed-in user's own segment and tags."""

    serializer_class = OwnProfileSerializer
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [ResilientScopedRateThrottle]
    throttle_scope = "profiles"

    @extend_schema(summary="Your own profile: segment and tags")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self) -> UserProfile:
        user = self.request.user
        if not user.is_authenticated:  # IsAuthenticated turned anonymous readers away; this narrows the type
            raise Http404(gettext("No profile has been built for you yet."))
        profile = UserProfile.objects.select_related("user", "segment").filter(user=user).first()
        if profile is None:
            raise Http404(gettext("No profile has been built for you yet."))
        return profile
