"""``GET /api/privacy/users/<username>/export/``: one person's data as JSON (export permission)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import Http404
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from behavior.throttling import ResilientScopedRateThrottle
from recommendations.api.permissions import CanExportPersonalData
from recommendations.services.privacy import export_user_data


class UserDataExportView(APIView):
    """Everything the recommender holds about one user (right of access), for holders of
    ``recommendations.export_personal_data`` only."""

    permission_classes = [CanExportPersonalData]
    throttle_classes = [ResilientScopedRateThrottle]
    throttle_scope = "privacy"

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
        operation_id="privacy_user_export",
    )
    def get(self, request: Request, username: str) -> Response:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist as exc:
            raise Http404(gettext("No such user.")) from exc
        response = Response(export_user_data(user))
        response["Cache-Control"] = "no-store"
        response["Content-Disposition"] = f'attachment; filename="user-data-{user.pk}.json"'
        return response
