"""``POST /api/events/``: one event or ``{"events": [...]}`` from browsers and apps."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http.request import RawPostDataException
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from behavior.adapter import get_tracking_adapter
from behavior.api.serializers import (
    ErrorSerializer,
    EventBatchSerializer,
    EventSerializer,
    IngestResultSerializer,
)
from behavior.api.throttling import PluginScopedRateThrottle
from behavior.conf import behavior_settings
from behavior.middleware import _VALID_VISITOR_ID
from behavior.services import ingest as services

DESCRIPTION = """Record behaviour events: one event object, or `{"events": [...]}`.

Limits: at most `MAX_BATCH_EVENTS` events per request (default 500), `MAX_EVENT_BYTES`
per event as JSON (default 8 KiB; a larger event is rejected on its own) and
`MAX_REQUEST_BYTES` per request body (default 1 MiB). Too many events or too large a body
answer **413**; a body that is not a JSON object answers **400**.

Answers **202** with the number of events stored (`accepted`), re-sent events whose
`event_id` was already stored (`duplicates`) and the per-event errors (`rejected`); the
valid events of a batch are stored even when others are rejected.

The user comes from authentication (session or basic). A `user`, `user_id` or `username`
key in an event is **rejected** for that event, so a client can never write for someone
else. Anonymous shoppers are identified by the first-party visitor cookie; an event's own
`visitor_id` is used only when the request carries no cookie. Unknown keys are rejected.
When the shopper opted out of tracking (Do-Not-Track / Global Privacy Control, missing
consent), events are acknowledged with 202 and not stored.
"""


class EventIngestView(APIView):
    """Thin view: size limits and JSON shape here, everything else in ``services``."""

    permission_classes = [AllowAny]
    throttle_classes = [PluginScopedRateThrottle]
    throttle_scope = "events"
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="events_create",
        summary="Record behaviour events",
        description=DESCRIPTION,
        request=PolymorphicProxySerializer(
            component_name="EventPayload",
            serializers=[EventSerializer, EventBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={
            202: IngestResultSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Malformed JSON or not an event object."),
            413: OpenApiResponse(ErrorSerializer, description="Too many events or too large a body."),
            429: OpenApiResponse(ErrorSerializer, description="Throttled."),
        },
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        events, error = _read_events(request)
        if error is not None:
            return error
        adapter = get_tracking_adapter()
        may_track = getattr(request._request, "may_track", None)
        if may_track is None:
            may_track = adapter.may_track(request._request)
        if not may_track:
            return Response({"accepted": 0, "duplicates": 0, "rejected": []}, status=status.HTTP_202_ACCEPTED)

        user = request.user if request.user and request.user.is_authenticated else None
        cookie = request.COOKIES.get(behavior_settings.VISITOR_COOKIE_NAME, "")
        issued = getattr(request._request, "visitor_id", "") or ""
        session = getattr(request._request, "session", None)
        result = services.ingest_events(
            events,
            user=user,
            # The cookie is authoritative; without one the body's visitor_id may name the visitor.
            visitor_id=issued if _VALID_VISITOR_ID.match(cookie) else "",
            default_visitor_id=issued,
            session_id=(session.session_key or "") if session is not None else "",
            user_agent=request.headers.get("User-Agent", ""),
            is_bot=adapter.is_bot(request._request),
        )
        # The same shape IngestResultSerializer documents, built directly: the counts are
        # ints and the rejections already {"index": int, "errors": {field: [str]}}.
        body = {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _too_large(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def _bad_request(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


def _read_events(request: Request) -> tuple[list, Response | None]:
    """The list of raw events in the body, or an error response (400 / 413)."""
    limit = behavior_settings.MAX_REQUEST_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return [], _bad_request("Invalid Content-Length header.")
    if length > limit:
        return [], _too_large(f"Request body is {length} bytes; at most {limit}.")
    try:
        body = request._request.body
    except RawPostDataException:
        return [], _bad_request("The request body was already read.")
    except RequestDataTooBig:  # Django's own DATA_UPLOAD_MAX_MEMORY_SIZE
        return [], _too_large(f"Request body is larger than {limit} bytes.")
    if len(body) > limit:
        return [], _too_large(f"Request body is {len(body)} bytes; at most {limit}.")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers invalid JSON, invalid UTF-8 and integers with too many digits.
        return [], _bad_request("Malformed JSON.")
    if not isinstance(payload, dict):
        return [], _bad_request('Expected one event object or {"events": [...]}.')
    if "events" not in payload:
        return [payload], None
    events = payload["events"]
    if len(payload) != 1 or not isinstance(events, list):
        return [], _bad_request('Expected {"events": [...]} with a list of event objects and nothing else.')
    if not events:
        return [], _bad_request("The events list is empty.")
    most = behavior_settings.MAX_BATCH_EVENTS
    if len(events) > most:
        return [], _too_large(f"{len(events)} events in one request; at most {most}.")
    return events, None
