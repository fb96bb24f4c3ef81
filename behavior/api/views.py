"""``POST /api/events/``: one event or ``{"events": [...]}`` from browsers and apps."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.exceptions import RequestDataTooBig
from django.http.request import RawPostDataException
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from behavior.adapter import get_tracking_adapter
from behavior.api.errors import exception_handler
from behavior.api.serializers import (
    ErrorSerializer,
    EventBatchSerializer,
    EventSerializer,
    IngestResultSerializer,
    RejectedBatchSerializer,
    UnavailableSerializer,
)
from behavior.conf import behavior_settings
from behavior.models import EventOrigin
from behavior.services import ingest as services
from behavior.throttling import ResilientScopedRateThrottle

DESCRIPTION = """Record behaviour events: one event object, or `{"events": [...]}`.

Limits: at most `MAX_BATCH_EVENTS` events per request (default 500), `MAX_EVENT_BYTES`
per event as JSON (default 8 KiB; a larger event is rejected on its own) and
`MAX_REQUEST_BYTES` per request body (default 1 MiB). Too many events or too large a body
answer **413**; a body that is not a JSON object answers **400**.

Answers **202** with the number of events stored (`accepted`) and re-sent events whose
`event_id` was already stored (`duplicates`) when every event was valid. When one or more
events are invalid it answers **400** with the same counts, a `detail` sentence and
`rejected`: the index of each bad event in the batch and the reasons per field; the valid
events of that batch **are stored** all the same (as Mixpanel's `/import` does), so a
client must not re-send the batch unchanged, only fix or drop the rejected events (a
re-send would store nothing twice anyway: event ids are idempotency keys). A re-sent event
keeps its `occurred_at`: an `event_id` stored with another time is rejected as reused, and
when that is the only reason events were rejected the answer is **409** (same body).

The user comes from authentication (session, basic or token). A `user`, `user_id` or
`username` key in an event is **rejected** for that event, so a client can never write for
someone else. An anonymous shopper is the visitor of the signed, HttpOnly cookie the server
issued to this browser (an unsigned or forged cookie is ignored and replaced); an event that
names a `visitor_id` is **rejected**. Unknown keys are rejected.

Server-to-server clients (an app's backend relaying its users' actions) may name the
visitor of each event in `visitor_id`, only when they authenticate with a DRF token
(`Authorization: Token …`) whose user holds the permission
`behavior.record_for_visitors`; their events are stored as that visitor's anonymous
events (never the token user's), marked `origin = "client"`, not flagged as bots by their
User-Agent, and Do-Not-Track headers of the client itself do not apply (honouring its
users' choices is the client's job).

When the shopper opted out of tracking (Do-Not-Track / Global Privacy Control, missing
consent), events are acknowledged with 202 and not stored.
"""


class EventIngestView(APIView):
    """Thin view: size limits and JSON shape here, everything else in ``services``."""

    permission_classes = [AllowAny]
    # Storing events never depends on Redis: the throttle counts per process while it is down.
    throttle_classes = [ResilientScopedRateThrottle]
    throttle_scope = "events"
    parser_classes = [JSONParser]

    def get_exception_handler(self) -> Any:
        """A database outage answers 503 with Retry-After (see ``behavior.api.errors``)."""
        return exception_handler

    def get_authenticators(self) -> list:
        """The project's authentication classes, plus DRF tokens when ``rest_framework.authtoken`` is in."""
        authenticators = super().get_authenticators()
        if apps.is_installed("rest_framework.authtoken") and not any(
            isinstance(a, TokenAuthentication) for a in authenticators
        ):
            authenticators.append(TokenAuthentication())
        return authenticators

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
            400: OpenApiResponse(
                RejectedBatchSerializer,
                description="Malformed JSON or not an event object (detail only), or rejected events "
                "(detail, counts and rejected[]: index and field of each); the valid events are stored.",
            ),
            409: OpenApiResponse(
                RejectedBatchSerializer,
                description="Every rejected event reuses an event_id stored with another occurred_at "
                "(the same body as 400); the other events are stored.",
            ),
            413: OpenApiResponse(ErrorSerializer, description="Too many events or too large a body."),
            429: OpenApiResponse(ErrorSerializer, description="Throttled."),
            503: OpenApiResponse(
                UnavailableSerializer,
                description="The database is unreachable: nothing was stored; retry after Retry-After "
                "seconds with the same event ids.",
            ),
        },
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        events, error = _read_events(request)
        if error is not None:
            return error
        adapter = get_tracking_adapter()
        if adapter.is_trusted_client(request):
            # The client names each event's visitor; the token's user is the client, not a shopper.
            result = services.ingest_events(events, is_bot=False, origin=EventOrigin.CLIENT.value)
        else:
            may_track = getattr(request._request, "may_track", None)
            if may_track is None:
                may_track = adapter.may_track(request._request)
            if not may_track:
                body = {"accepted": 0, "duplicates": 0, "rejected": []}
                return Response(body, status=status.HTTP_202_ACCEPTED)
            user = request.user if request.user and request.user.is_authenticated else None
            session = getattr(request._request, "session", None)
            result = services.ingest_events(
                events,
                user=user,
                # The visitor the middleware verified or issued; never one named by the browser.
                visitor_id=getattr(request._request, "visitor_id", "") or "",
                allow_visitor_id=False,
                session_id=(session.session_key or "") if session is not None else "",
                is_bot=adapter.is_bot(request._request),
            )
        # The same shape IngestResultSerializer documents, built directly: the counts are
        # ints and the rejections already {"index": int, "errors": {field: [str]}}.
        body = {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}
        if result.rejected:
            conflict = all(services.is_reused_id(entry) for entry in result.rejected)
            return Response(
                {"detail": _rejected_detail(result, len(events)), **body},
                status=status.HTTP_409_CONFLICT if conflict else status.HTTP_400_BAD_REQUEST,
            )
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _rejected_detail(result: services.IngestResult, sent: int) -> str:
    """The sentence of a 400 answer to a batch with rejected events (the valid ones are stored)."""
    rejected = len(result.rejected)
    if rejected == sent:
        if sent == 1:
            return gettext("The event was rejected; nothing was stored.")
        return gettext("All %(sent)d events were rejected; nothing was stored.") % {"sent": sent}
    return gettext(
        "%(rejected)d of %(sent)d events rejected (see rejected[].index); the other %(stored)d "
        "were stored (%(accepted)d new, %(duplicates)d already stored)."
    ) % {
        "rejected": rejected,
        "sent": sent,
        "stored": sent - rejected,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
    }


def _body_size(size: int, limit: int) -> str:
    return gettext("Request body is %(size)d bytes; at most %(max)d.") % {"size": size, "max": limit}


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
        return [], _bad_request(gettext("Invalid Content-Length header."))
    if length > limit:
        return [], _too_large(_body_size(length, limit))
    try:
        body = request._request.body
    except RawPostDataException:
        return [], _bad_request(gettext("The request body was already read."))
    except RequestDataTooBig:  # Django's own DATA_UPLOAD_MAX_MEMORY_SIZE
        return [], _too_large(gettext("Request body is larger than %(max)d bytes.") % {"max": limit})
    if len(body) > limit:
        return [], _too_large(_body_size(len(body), limit))
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers invalid JSON, invalid UTF-8 and integers with too many digits.
        return [], _bad_request(gettext("Malformed JSON."))
    if not isinstance(payload, dict):
        return [], _bad_request(gettext('Expected one event object or {"events": [...]}.'))
    if "events" not in payload:
        return [payload], None
    events = payload["events"]
    if len(payload) != 1 or not isinstance(events, list):
        return [], _bad_request(
            gettext('Expected {"events": [...]} with a list of event objects and nothing else.')
        )
    if not events:
        return [], _bad_request(gettext("The events list is empty."))
    most = behavior_settings.MAX_BATCH_EVENTS
    if len(events) > most:
        return [], _too_large(
            gettext("%(count)d events in one request; at most %(max)d.") % {"count": len(events), "max": most}
        )
    return events, None
