"""Thin DRF views over ``recommendations.services.serving``: validate, call one service, serialize."""

from __future__ import annotations

import re
from typing import Any

from django.core.cache import cache as default_cache
from django.utils.cache import patch_cache_control, patch_vary_headers
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from behavior.api.errors import exception_handler
from behavior.outages import database_unavailable
from behavior.throttling import ResilientScopedRateThrottle
from recommendations.api import fallback
from recommendations.api import serializers as s
from recommendations.conf import recommender_settings
from recommendations.services import personal_keys, serving
from recommendations.services.serving.impressions import cache_key, redis_client
from recommendations.services.serving.service import UnknownItem
from recommendations.services.serving.state import mark_not_interested
from recommendations.services.serving.types import ServedList


class CounterScopedRateThrottle(ResilientScopedRateThrottle):
    """DRF's scoped throttle as a fixed-window counter in Redis: one round trip per request.

    ``ScopedRateThrottle`` reads and rewrites the list of the shopper's request times on every
    request (two round trips and a list of up to ``rate`` floats to unpickle and pickle); the
    counter (INCR + EXPIRE in one pipeline) allows the same number of requests per window.
    Without a Redis cache it is DRF's own throttle. While Redis fails, each process counts
    on its own (``behavior.throttling``).
    """

    def make_key(self, key: str) -> str:
        """The throttle cache's key for ``key`` (the default cache's without its proxy lookup)."""
        return cache_key(key) if self.cache is default_cache else self.cache.make_key(key)

    def allow_request(self, request: Any, view: Any) -> bool:
        client = redis_client()
        if client is None:
            return super().allow_request(request, view)
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view) if self.rate is not None else None
        if self.key is None or self.num_requests is None or self.duration is None:
            return True
        window = int(self.timer() // self.duration)
        counter = self.make_key(personal_keys.throttle_counter_key(self.key, window))
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incr(counter)
            pipe.expire(counter, self.duration + 1)
            count, _ = pipe.execute()
        except Exception as exc:  # a broken Redis must not turn every request away
            return self.allow_locally(request, view, exc)
        self.window_end = (window + 1) * self.duration
        return int(count) <= self.num_requests

    def wait(self) -> float | None:
        if hasattr(self, "window_end"):
            return max(0.0, self.window_end - self.timer())
        return super().wait()


def query_params(serializer_class: type[s.serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validated query parameters (400 on bad input), ``limit`` defaulting to ``DEFAULT_LIMIT``."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    params = dict(serializer.validated_data)
    params.setdefault("limit", recommender_settings.DEFAULT_LIMIT)
    return params


def my_list(
    request: Any, *, user: Any, visitor_id: str, params: dict[str, Any], defer_writes: bool = False
) -> tuple[Any, ServedList]:
    """The body of a shopper's "my list" answer and the service's answer it was made from (the
    view, and the fast path's real-time lane, which sends ``served.closing`` itself).

    ``request`` carries the session (cart) and the visitor id.
    """
    served = serving.serve_list(
        user=user,
        visitor_id=visitor_id,
        limit=params["limit"],
        placement=params["placement"],
        context={"request": request},
        exclude=params.get("exclude") or (),
        reuse_list=True,
        defer_writes=defer_writes,
    )
    return s.recommendation_list_data(served.result), served


class _RecommendationsAPIView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [CounterScopedRateThrottle]
    throttle_scope = "recommendations"
    # Placement of a fallback answer when the request names none (see fallback_answer).
    fallback_placement = "default"

    def query(self, serializer_class: type[s.serializers.Serializer]) -> dict[str, Any]:
        return query_params(serializer_class, self.request.query_params)

    def get_exception_handler(self) -> Any:
        """A database outage answers 503 with Retry-After (see ``behavior.api.errors``)."""
        return exception_handler

    def handle_exception(self, exc: Exception) -> Response:
        """While the database is unreachable a GET gets the last popular list in memory (or a 503)."""
        if self.request is not None and self.request.method == "GET" and database_unavailable(exc):
            body = self.fallback_answer()
            if body is not None:
                response = Response(body)
                patch_cache_control(response, private=True, no_store=True)
                return response
        return super().handle_exception(exc)

    def fallback_answer(self) -> dict[str, Any] | None:
        """The remembered popular list for this request's parameters (read leniently), or None."""
        params = self.request.query_params
        try:
            limit = min(int(params.get("limit", "")), recommender_settings.MAX_LIMIT)
        except ValueError:
            limit = recommender_settings.DEFAULT_LIMIT
        placement = params.get("placement") or params.get("kind") or self.fallback_placement
        if not re.fullmatch(s.PLACEMENT_PATTERN[1:-1], placement):
            placement = self.fallback_placement
        return fallback.answer(limit=limit, placement=placement, category=params.get("category"))

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method == "GET" and response.status_code == 200 and "source" in (response.data or {}):
            fallback.keep_fresh()  # a list was built from the database: it is reachable
        return response

    @staticmethod
    def public(response: Response) -> Response:
        """Same answer for everybody: shared caches may keep it for a while."""
        patch_cache_control(response, public=True, max_age=recommender_settings.PUBLIC_MAX_AGE)
        return response


def _shopper(request: Request) -> tuple[Any, str]:
    user = request.user if request.user and request.user.is_authenticated else None
    return user, getattr(request, "visitor_id", "") or ""


class RecommendationsView(_RecommendationsAPIView):
    """The current shopper's recommendations (there is no user parameter: nobody reads another's list)."""

    @extend_schema(parameters=[s.RecommendationQuerySerializer], responses=s.RecommendationListSerializer)
    def get(self, request: Request) -> Response:
        params = self.query(s.RecommendationQuerySerializer)
        user, visitor_id = _shopper(request)
        data, _served = my_list(request, user=user, visitor_id=visitor_id, params=params)
        response = Response(data)
        patch_cache_control(response, private=True, no_store=True)
        patch_vary_headers(response, ["Cookie", "Authorization"])
        return response


class SimilarItemsView(_RecommendationsAPIView):
    """Items similar to, or often bought with, one item."""

    fallback_placement = "similar"

    @extend_schema(
        parameters=[s.SimilarQuerySerializer, OpenApiParameter("key", str, OpenApiParameter.PATH)],
        responses=s.RecommendationListSerializer,
    )
    def get(self, request: Request, key: str) -> Response:
        params = self.query(s.SimilarQuerySerializer)
        service = serving.bought_together if params["kind"] == "bought_together" else serving.similar_items
        try:
            # record=False: a publicly cached answer is not one impression per shopper
            result = service(key, limit=params["limit"], placement=params["kind"], record=False)
        except UnknownItem:
            raise NotFound({"key": f"No item with key {key!r}."}) from None
        return self.public(Response(s.RecommendationListSerializer(result).data))


class PopularItemsView(_RecommendationsAPIView):
    """Popular and trending items, overall or of one category."""

    fallback_placement = "popular"

    @extend_schema(parameters=[s.PopularQuerySerializer], responses=s.RecommendationListSerializer)
    def get(self, request: Request) -> Response:
        params = self.query(s.PopularQuerySerializer)
        result = serving.popular_items(limit=params["limit"], category=params.get("category"), record=False)
        data = s.RecommendationListSerializer(result).data
        if params.get("category"):  # the overall list is kept by keep_fresh, at full length
            fallback.remember(data, params["category"])
        return self.public(Response(data))


class NotInterestedView(_RecommendationsAPIView):
    """Mark an item "not interested": it is left out of this shopper's lists from now on."""

    @extend_schema(
        request=s.NotInterestedSerializer,
        responses={201: s.NotInterestedResponseSerializer, 200: s.NotInterestedResponseSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = s.NotInterestedSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = serializer.validated_data["item"]
        user, visitor_id = _shopper(request)
        if user is None and not visitor_id:
            raise ValidationError({"visitor_id": "No visitor cookie: tracking is off for this browser."})
        try:
            serving.service.resolve_item(key)
        except UnknownItem:
            raise ValidationError({"item": f"No item with key {key!r}."}) from None
        created = mark_not_interested(user_id=user.pk if user else None, visitor_id=visitor_id, item_key=key)
        body = s.NotInterestedResponseSerializer({"item": key, "created": created}).data
        response = Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        patch_cache_control(response, private=True, no_store=True)
        return response
