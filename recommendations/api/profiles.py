"""``GET /api/profiles/<username>/`` (view-profiles permission) and ``GET /api/profiles/me/`` (own)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.generics import RetrieveAPIView

from behavior.throttling import ResilientScopedRateThrottle
from recommendations.api.permissions import CanViewProfiles
from recommendations.models import Segment, UserProfile


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["number", "name", "description"]


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField()
    operator = serializers.CharField()
    threshold = serializers.FloatField()
    percentile = serializers.FloatField(required=False)


class TagSerializer(serializers.Serializer):
    label = serializers.CharField()
    weight = serializers.FloatField()
    description = serializers.CharField(allow_blank=True)
    reasons = ReasonSerializer(many=True)


class StaffProfileSerializer(serializers.ModelSerializer):
    """Everything staff review: segment, tags with reasons, propensity, features, outlier flag."""

    username = serializers.CharField(source="user.get_username", read_only=True)
    segment = SegmentSerializer(read_only=True)
    tags = TagSerializer(many=True, read_only=True)

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


class OwnTagSerializer(serializers.Serializer):
    label = serializers.CharField()
    description = serializers.CharField(allow_blank=True)


class OwnSegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["name", "description"]


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
            raise Http404("No profile has been built for this user.")
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
        profile = UserProfile.objects.select_related("user", "segment").filter(user=self.request.user).first()
        if profile is None:
            raise Http404("No profile has been built for you yet.")
        return profile
